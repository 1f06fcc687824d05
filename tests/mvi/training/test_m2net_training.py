"""M2Net in the fold job: its options and local pretrained weights come from the model config section."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cmdnet.data.folds import make_partitions
from cmdnet.mvi.models.resnet2d import ResNet2D
from cmdnet.mvi.training.fold import load_model, train_method_fold
from tests.mvi.training.test_fold_training import settings, tiny_cohort


def _train(tmp_path, m2net_options):
    data = tiny_cohort()
    folds = make_partitions(data.labels, 3, 1, 0.25, seed=0)
    job = settings("m2net", mvi={"model": {"m2net": m2net_options},  # the default config's memory format:
                                 "training": {"epochs": 1, "channels_last": True}})
    train_method_fold(data, folds, "m2net", 0, 0, job, out_model=tmp_path / "m.pt", out_history=tmp_path / "h.csv",
                      progress=lambda _: None)
    return load_model(tmp_path / "m.pt")


def test_m2net_fold_job_uses_its_options_and_trains_every_head(tmp_path):
    weights = tmp_path / "resnet.pth"
    torch.save(ResNet2D(width=0.125).state_dict(), weights)
    model, payload = _train(tmp_path, {"bilinear_dim": 128, "pretrained_weights": str(weights)})
    assert model.bilinear.out_dim == 128
    assert "pretrained_weights" not in payload["kwargs"], "the model file must rebuild without the weights file"
    history = pd.read_csv(tmp_path / "h.csv")
    assert (history["train_aux_focal"] > 0).all(), "the per-phase and shared heads must have their own loss"


def test_m2net_fold_job_refuses_pretrained_weights_of_another_width_before_training(tmp_path):
    weights = tmp_path / "resnet34_imagenet.pth"
    torch.save(ResNet2D(width=0.25).state_dict(), weights)
    with pytest.raises(ValueError, match=r"resnet34_imagenet\.pth: does not fit the 2D backbone"):
        _train(tmp_path, {"pretrained_weights": str(weights)})
    assert not (tmp_path / "h.csv").exists()
