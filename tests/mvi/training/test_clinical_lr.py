"""clinical_lr: the clinical-only reference row. Fold isolation, the prediction frames, determinism, learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmdnet.data.folds import make_partitions
from cmdnet.evaluation.stats.metrics import macro_ovo_auc
from cmdnet.mvi.training.clinical_lr import clinical_lr_predictions, fit_clinical_lr
from cmdnet.mvi.training.fold import MviData
from tests.mvi.training.clinical_tables import DICTIONARY, clinical_table

SHAPE = (2, 4, 4)


def cohort(n: int = 60, seed: int = 0) -> MviData:
    """Labels 0/1/2; `afp` carries the label, `albumin` (with gaps) and `hbv` do not."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    labels = pd.Series(np.arange(n) % 3, index=ids)
    clinical = clinical_table(labels, rng, afp_effect=1.5)
    images = np.zeros((n, 2, *SHAPE), dtype=np.float32)
    return MviData(images, ("PRE", "HBP"), ids, labels, clinical, DICTIONARY)


@pytest.fixture(scope="module")
def partitions():
    return make_partitions(cohort().labels, 3, 2, 0.25, seed=0)


def test_every_patient_once_per_repeat_in_the_frame_of_the_networks(partitions):
    data = cohort()
    oof, validation = clinical_lr_predictions(data, partitions, c=1.0, seed=0)
    assert list(oof.columns) == ["patient_id", "repeat", "fold", "label", "prob_0", "prob_1", "prob_2"]
    for repeat, part in oof.groupby("repeat"):
        assert sorted(part["patient_id"]) == sorted(data.patient_ids), f"repeat {repeat}"
        assert (part["label"].to_numpy() == data.labels.loc[part["patient_id"]].to_numpy()).all()
    assert np.allclose(oof[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0)
    split = partitions.split(1, 2)
    rows = validation[(validation["repeat"] == 1) & (validation["fold"] == 2)]
    assert sorted(rows["patient_id"]) == sorted(split.val), "validation rows: the inner validation split"


def test_test_fold_patients_cannot_influence_their_predictions(partitions):
    """Scrambling one test fold's clinical values and labels leaves that fold's model unchanged."""
    data = cohort()
    split = partitions.split(0, 0)
    scrambled = cohort()
    scrambled.clinical.loc[split.test, "afp"] = 1e4
    scrambled.clinical.loc[split.test, "albumin"] = np.nan
    scrambled.labels.loc[split.test] = 2
    a = clinical_lr_predictions(data, partitions, seed=0)[0].set_index(["repeat", "fold", "patient_id"])
    b = clinical_lr_predictions(scrambled, partitions, seed=0)[0].set_index(["repeat", "fold", "patient_id"])
    probs = ["prob_0", "prob_1", "prob_2"]
    # the fold's model is fitted on its training patients alone, so scrambling its test patients changes nothing
    # in it; the other folds train on the scrambled patients, so theirs must change (the check is not vacuous)
    pre_a, lr_a, _ = fit_clinical_lr(data.clinical.loc[split.train], data.labels.loc[split.train], data.dictionary)
    pre_b, lr_b, _ = fit_clinical_lr(scrambled.clinical.loc[split.train], scrambled.labels.loc[split.train],
                                     scrambled.dictionary)
    assert pre_a.to_dict() == pre_b.to_dict() and np.array_equal(lr_a.coef_, lr_b.coef_)
    assert not np.allclose(a.loc[(0, 1)][probs].to_numpy(), b.loc[(0, 1)][probs].to_numpy()), \
        "a fold that trains on the scrambled patients must change"


def test_same_seed_same_predictions_and_c_by_inner_cv(partitions):
    data = cohort()
    a = clinical_lr_predictions(data, partitions, c="cv", seed=3)[0]
    b = clinical_lr_predictions(data, partitions, c="cv", seed=3)[0]
    pd.testing.assert_frame_equal(a, b)


def test_learns_the_clinical_signal_out_of_fold(partitions):
    oof = clinical_lr_predictions(cohort(), partitions, c=1.0, seed=0)[0]
    first = oof[oof["repeat"] == 0]
    auc = macro_ovo_auc(first["label"].to_numpy(), first[["prob_0", "prob_1", "prob_2"]].to_numpy())
    assert auc > 0.8, f"clinical_lr missed a strong clinical signal (pooled AUC {auc:.3f})"


def test_bad_c_and_missing_class_are_refused():
    data = cohort()
    with pytest.raises(ValueError, match="positive number or 'cv'"):
        fit_clinical_lr(data.clinical, data.labels, data.dictionary, c=0)
    only_two = data.labels.index[data.labels < 2]
    with pytest.raises(ValueError, match="absent"):
        fit_clinical_lr(data.clinical.loc[only_two], data.labels.loc[only_two], data.dictionary)
