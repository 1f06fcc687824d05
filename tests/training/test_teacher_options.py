"""Teacher options reach the saved model through the training entry point, and L_clinical is logged."""

from __future__ import annotations

import pandas as pd
import pytest

from cmdnet.folds import make_folds
from cmdnet.training.mvi import load_model, predict_fold, train_teacher_fold

from .test_mvi_training import MODEL_CFG, TRAIN_CFG, tiny_cohort


@pytest.fixture(scope="module")
def folds():
    return make_folds(tiny_cohort().labels, 3, seed=0)


def test_teacher_section_of_the_model_config_builds_and_saves_that_teacher(tmp_path, folds):
    data = tiny_cohort()
    model_cfg = {**MODEL_CFG, "teacher": {"clinical_path": "chain", "clinical_init": "random", "fusion": "affine",
                                          "head_hidden": 32, "dropout": 0.25, "clinical_weight": 0.1}}
    train_teacher_fold(data, folds, 0, "teacher", model_cfg, TRAIN_CFG, seed=1, inner_fraction=0.25,
                       out_model=tmp_path / "t.pt", out_history=tmp_path / "t.csv", progress=lambda _: None)
    model, payload = load_model(tmp_path / "t.pt")
    for key, value in model_cfg["teacher"].items():
        assert payload["kwargs"][key] == value, f"teacher option {key} did not reach the saved model"
    enc = model.encoders["pre"]
    assert enc.clinical.clinical_path == "chain" and enc.fusion == "affine" and model.head[0].out_features == 32
    history = pd.read_csv(tmp_path / "t.csv")
    assert "train_clinical" in history.columns and (history["train_clinical"] > 0).all(), \
        "the weighted L_clinical term must be logged every epoch"
    pred = predict_fold(tmp_path / "t.pt", data, folds, 0)
    assert len(pred) == (folds["fold"] == 0).sum()


def test_default_teacher_has_no_clinical_term_in_its_history(tmp_path, folds):
    data = tiny_cohort()
    train_teacher_fold(data, folds, 1, "teacher", MODEL_CFG, TRAIN_CFG, seed=1, inner_fraction=0.25,
                       out_model=tmp_path / "t.pt", out_history=tmp_path / "t.csv", progress=lambda _: None)
    _, payload = load_model(tmp_path / "t.pt")
    assert "clinical_weight" not in payload["kwargs"]
    assert "train_clinical" not in pd.read_csv(tmp_path / "t.csv").columns
