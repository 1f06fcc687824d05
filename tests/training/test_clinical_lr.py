"""clinical_lr: the clinical-only reference row. Fold isolation, the predict_fold frame, save/load, learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmdnet.folds import make_folds
from cmdnet.stats.metrics import macro_ovo_auc
from cmdnet.training.clinical_lr import (
    C_GRID, fit_clinical_lr, load_clinical_lr, predict_clinical_lr_fold, train_clinical_lr_fold,
)
from cmdnet.training.mvi import MviData

SHAPE = (2, 4, 4)


def cohort(n: int = 60, seed: int = 0) -> MviData:
    """Labels 0/1/2; `afp` carries the label, `albumin` (with gaps) and `hbv` do not."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    labels = pd.Series(np.arange(n) % 3, index=ids)
    clinical = pd.DataFrame({"afp": labels.to_numpy() * 1.5 + rng.normal(size=n),
                             "albumin": rng.normal(40, 5, size=n),
                             "hbv": (rng.random(n) < 0.5).astype(float)}, index=pd.Index(ids, name="patient_id"))
    clinical.loc[ids[::7], "albumin"] = np.nan
    dictionary = pd.DataFrame({"column": ["afp", "albumin", "hbv"], "name": ["afp", "albumin", "hbv"],
                               "type": ["numeric", "numeric", "binary"], "unit": ["", "g/L", ""],
                               "min": [None, None, None], "max": [None, None, None],
                               "categories": ["", "", "no|yes"], "description": ["", "", ""]})
    images = np.zeros((n, 2, *SHAPE), dtype=np.float32)
    return MviData(images, ("PRE", "HBP"), ids, labels, clinical, dictionary)


@pytest.fixture(scope="module")
def folds():
    return make_folds(cohort().labels, 3, seed=0)


def test_out_of_fold_frame_matches_predict_fold(tmp_path, folds):
    data = cohort()
    train_clinical_lr_fold(data, folds, 1, c=1.0, seed=0, out_model=tmp_path / "lr.json")
    pred = predict_clinical_lr_fold(tmp_path / "lr.json", data, folds, 1)
    test_ids = folds.loc[folds["fold"] == 1, "patient_id"].tolist()
    assert list(pred.columns) == ["patient_id", "fold", "label", "prob_0", "prob_1", "prob_2"]
    assert pred["patient_id"].tolist() == test_ids, "rows must be the fold's test patients, in fold order"
    assert (pred["fold"] == 1).all()
    assert pred["label"].tolist() == data.labels.loc[test_ids].tolist()
    assert np.allclose(pred[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0)


def test_test_fold_patients_cannot_influence_the_clinical_lr_model(tmp_path, folds):
    """Scrambling the test fold's clinical values and labels leaves the fitted model unchanged; changing a
    training patient changes it (so the check can fail)."""
    data = cohort()
    train_clinical_lr_fold(data, folds, 0, c="cv", seed=0, out_model=tmp_path / "a.json")
    test_ids = folds.loc[folds["fold"] == 0, "patient_id"].tolist()
    train_ids = folds.loc[folds["fold"] != 0, "patient_id"].tolist()

    scrambled = cohort()
    scrambled.clinical.loc[test_ids, "afp"] = 1e4
    scrambled.clinical.loc[test_ids, "albumin"] = np.nan
    scrambled.labels.loc[test_ids] = 2
    train_clinical_lr_fold(scrambled, folds, 0, c="cv", seed=0, out_model=tmp_path / "b.json")
    (pre_a, lr_a, _), (pre_b, lr_b, _) = load_clinical_lr(tmp_path / "a.json"), load_clinical_lr(tmp_path / "b.json")
    assert pre_a.to_dict() == pre_b.to_dict(), "test-fold values reached the clinical preprocessor"
    assert np.array_equal(lr_a.coef_, lr_b.coef_), "test-fold patients changed the regression"

    moved = cohort()
    moved.clinical.loc[train_ids[:5], "afp"] += 5.0
    train_clinical_lr_fold(moved, folds, 0, c=load_clinical_lr(tmp_path / "a.json")[2]["C"], seed=0, out_model=tmp_path / "c.json")
    assert not np.array_equal(lr_a.coef_, load_clinical_lr(tmp_path / "c.json")[1].coef_), \
        "changing training patients should change the model (the isolation check above would be vacuous)"


def test_model_file_round_trip_gives_the_same_probabilities(tmp_path, folds):
    data = cohort()
    train_ids = folds.loc[folds["fold"] != 2, "patient_id"].tolist()
    pre, lr, _ = fit_clinical_lr(data.clinical.loc[train_ids], data.labels.loc[train_ids], data.dictionary,
                                 c=0.5, seed=0)
    train_clinical_lr_fold(data, folds, 2, c=0.5, seed=0, out_model=tmp_path / "lr.json")
    pred = predict_clinical_lr_fold(tmp_path / "lr.json", data, folds, 2)
    test_ids = pred["patient_id"].tolist()
    direct = lr.predict_proba(pre.transform(data.clinical.loc[test_ids]).astype(np.float64))
    assert np.allclose(pred[["prob_0", "prob_1", "prob_2"]].to_numpy(), direct, atol=1e-12)


def test_a_model_file_of_another_fold_is_refused(tmp_path, folds):
    data = cohort()
    train_clinical_lr_fold(data, folds, 0, c=1.0, seed=0, out_model=tmp_path / "lr.json")
    with pytest.raises(ValueError, match="belongs to fold 0"):
        predict_clinical_lr_fold(tmp_path / "lr.json", data, folds, 1)


def test_c_is_chosen_on_the_training_patients_from_the_grid_and_is_deterministic(tmp_path, folds):
    data = cohort()
    a = train_clinical_lr_fold(data, folds, 0, c="cv", seed=3, out_model=tmp_path / "a.json")
    b = train_clinical_lr_fold(data, folds, 0, c="cv", seed=3, out_model=tmp_path / "b.json")
    assert a["C"] in C_GRID and a["C"] == b["C"]
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text(), "same seed, same model file"


def test_learns_the_clinical_signal_out_of_fold(tmp_path, folds):
    data = cohort()
    frames = []
    for fold in range(3):
        train_clinical_lr_fold(data, folds, fold, c=1.0, seed=0, out_model=tmp_path / f"lr{fold}.json")
        frames.append(predict_clinical_lr_fold(tmp_path / f"lr{fold}.json", data, folds, fold))
    pred = pd.concat(frames)
    auc = macro_ovo_auc(pred["label"].to_numpy(), pred[["prob_0", "prob_1", "prob_2"]].to_numpy())
    assert auc > 0.8, f"clinical_lr missed a strong clinical signal (pooled AUC {auc:.3f})"


def test_bad_c_and_missing_class_are_refused():
    data = cohort()
    with pytest.raises(ValueError, match="positive number or 'cv'"):
        fit_clinical_lr(data.clinical, data.labels, data.dictionary, c=0)
    only_two = data.labels.index[data.labels < 2]
    with pytest.raises(ValueError, match="absent"):
        fit_clinical_lr(data.clinical.loc[only_two], data.labels.loc[only_two], data.dictionary)
