"""Teacher options (`mvi.model.teacher`, `mvi.teacher_training`, a registry entry's options) reach the saved
teacher, and L_clinical is logged."""

from __future__ import annotations

import pandas as pd

from cmdnet.mvi.training.fold import load_model, predict_fold, train_teacher_fold

from .test_fold_training import folds, settings, tiny_cohort  # noqa: F401 (folds: a fixture)


def test_teacher_section_of_the_model_config_builds_and_saves_that_teacher(tmp_path, folds):  # noqa: F811
    data = tiny_cohort()
    options = {"clinical_path": "chain", "clinical_init": "random", "fusion": "affine", "head_hidden": 32,
               "dropout": 0.25}
    train_teacher_fold(data, folds, "teacher", 0, 0, settings("teacher", mvi={"model": {"teacher": options}}),
                       out_model=tmp_path / "t.pt", out_history=tmp_path / "t.csv", progress=lambda _: None)
    model, payload = load_model(tmp_path / "t.pt")
    for key, value in options.items():
        assert payload["kwargs"][key] == value, f"teacher option {key} did not reach the saved model"
    enc = model.encoders["pre"]
    assert enc.clinical.clinical_path == "chain" and enc.fusion == "affine" and model.head[0].out_features == 32
    assert "train_clinical" not in pd.read_csv(tmp_path / "t.csv").columns
    oof, _ = predict_fold(tmp_path / "t.pt", data, folds, progress=lambda _: None)
    assert sorted(oof["patient_id"]) == folds.split(0, 0).test


def test_teachers_select_by_validation_loss_and_students_keep_their_rule():
    assert settings("teacher")["training"]["selection_metric"] == "val_loss"
    assert settings("ours")["training"]["selection_metric"] == "val_auc"
    assert "teacher" not in settings("ours")["model"], "a student's jobs must not rerun for a teacher option"


def test_the_l_clinical_teacher_has_its_head_and_logs_the_weighted_term(tmp_path, folds):  # noqa: F811
    data = tiny_cohort()
    train_teacher_fold(data, folds, "teacher_lclin", 0, 1, settings("teacher_lclin"), out_model=tmp_path / "t.pt",
                       out_history=tmp_path / "t.csv", progress=lambda _: None)
    _, payload = load_model(tmp_path / "t.pt")
    assert payload["kwargs"]["clinical_head"] == "reconstruct"
    history = pd.read_csv(tmp_path / "t.csv")
    assert "train_clinical" in history.columns and (history["train_clinical"] > 0).all(), \
        "the weighted L_clinical term must be logged every epoch"
