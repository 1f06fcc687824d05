"""M2Net in the fold job: its options and local pretrained weights come from the model config section."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cmdnet.folds import make_folds
from cmdnet.models.resnet2d import ResNet2D
from cmdnet.training.mvi import load_model, train_method_fold
from tests.training.test_mvi_training import MODEL_CFG, TRAIN_CFG, tiny_cohort


def _train(tmp_path, m2net_options):
    data = tiny_cohort()
    folds = make_folds(data.labels, 3, seed=0)
    cfg = {**MODEL_CFG, "m2net": m2net_options}
    training = {**TRAIN_CFG, "epochs": 1, "channels_last": True}  # the default config's memory format
    train_method_fold(data, folds, 0, "m2net", cfg, training, {}, seed=1, inner_fraction=0.25,
                      out_model=tmp_path / "m.pt", out_history=tmp_path / "h.csv", progress=lambda _: None)
    return load_model(tmp_path / "m.pt")


def test_m2net_fold_job_uses_its_options_and_trains_every_head(tmp_path):
    weights = tmp_path / "resnet.pth"
    torch.save(ResNet2D(width=0.125).state_dict(), weights)
    model, payload = _train(tmp_path, {"bilinear_dim": 128, "pretrained_weights": str(weights)})
    assert model.bilinear.out_dim == 128
    assert "pretrained_weights" not in payload["kwargs"], "the model file must rebuild without the weights file"
    history = pd.read_csv(tmp_path / "h.csv")
    assert history["train_stagewise"].notna().all(), "the per-phase and shared heads must have their own loss"


def test_m2net_fold_job_refuses_pretrained_weights_of_another_width_before_training(tmp_path):
    weights = tmp_path / "resnet34_imagenet.pth"
    torch.save(ResNet2D(width=0.25).state_dict(), weights)
    with pytest.raises(ValueError, match=r"resnet34_imagenet\.pth: does not fit the 2D backbone"):
        _train(tmp_path, {"pretrained_weights": str(weights)})
    assert not (tmp_path / "h.csv").exists()
