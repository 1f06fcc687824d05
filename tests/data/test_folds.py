"""Patient-level folds: stratification, disjointness, coverage, determinism, repeats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmdnet.data.folds import fold_split, inner_validation_split, make_folds, make_repeated_folds


def _labels(counts=(13, 9, 5), missing: int = 0) -> pd.Series:
    y = [c for c, n in enumerate(counts) for _ in range(n)] + [pd.NA] * missing
    ids = [f"P{i:03d}" for i in range(len(y))]
    rng = np.random.default_rng(7)
    order = rng.permutation(len(y))  # labels not sorted by id
    return pd.Series([y[i] for i in order], index=ids, dtype="Int64")


def _class_counts(folds: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    y = folds["patient_id"].map(labels.to_dict())
    return pd.crosstab(folds["fold"], y)


def test_make_folds_stratified_disjoint_and_covering():
    labels = _labels()
    folds = make_folds(labels, k=5, seed=0)
    assert folds.columns.tolist() == ["patient_id", "fold"]
    assert sorted(folds["patient_id"]) == sorted(labels.index) and folds["patient_id"].is_unique
    assert set(folds["fold"]) == set(range(5))
    counts = _class_counts(folds, labels)
    assert (counts.max() - counts.min() <= 1).all(), counts
    seen: set[str] = set()
    for f in range(5):
        train, test = fold_split(folds, f)
        assert not set(train) & set(test)
        assert set(train) | set(test) == set(labels.index)
        assert not seen & set(test)
        seen |= set(test)
    assert seen == set(labels.index)


def test_make_folds_is_deterministic_and_order_independent():
    labels = _labels()
    a = make_folds(labels, k=5, seed=3)
    b = make_folds(labels.sample(frac=1.0, random_state=1), k=5, seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = make_folds(labels, k=5, seed=4)
    assert not a["fold"].equals(c["fold"])


def test_patients_without_label_are_left_out():
    labels = _labels(counts=(11, 12), missing=4)
    folds = make_folds(labels, k=4, seed=0)
    assert len(folds) == 23 and set(folds["patient_id"]) == set(labels.dropna().index)


def test_repeated_folds():
    labels = _labels(counts=(21, 25))  # the grading paper's 46 patients, 4-fold x 10
    folds = make_repeated_folds(labels, k=4, repeats=10, seed=0)
    assert folds.columns.tolist() == ["patient_id", "repeat", "fold"]
    assert len(folds) == 460 and set(folds["repeat"]) == set(range(10))
    per_repeat = [folds[folds["repeat"] == r].set_index("patient_id")["fold"] for r in range(10)]
    for r, f in enumerate(per_repeat):
        counts = _class_counts(folds[folds["repeat"] == r], labels)
        assert (counts.max() - counts.min() <= 1).all()
        train, test = fold_split(folds, 2, repeat=r)
        assert not set(train) & set(test) and len(train) + len(test) == 46
    assert not per_repeat[0].equals(per_repeat[1].loc[per_repeat[0].index])
    pd.testing.assert_frame_equal(folds, make_repeated_folds(labels, k=4, repeats=10, seed=0))


def test_inner_validation_split_is_stratified_and_inside_training():
    labels = _labels(counts=(40, 20, 10))
    train, _ = fold_split(make_folds(labels, k=5, seed=0), 0)
    inner, val = inner_validation_split(train, labels, fraction=0.25, seed=1)
    assert not set(inner) & set(val) and set(inner) | set(val) == set(train)
    assert len(val) == 14
    assert labels.loc[val].astype(int).value_counts().sort_index().tolist() == [8, 4, 2]
    assert (inner, val) == inner_validation_split(list(reversed(train)), labels, 0.25, seed=1)
    assert val != inner_validation_split(train, labels, 0.25, seed=2)[1]


def test_inner_validation_single_member_class_stays_in_training():
    labels = pd.Series([0] * 6 + [1] * 4 + [2], index=[f"Q{i}" for i in range(11)])
    inner, val = inner_validation_split(labels.index.tolist(), labels, fraction=0.3, seed=0)
    assert "Q10" in inner and len(val) == 3
    assert set(labels.loc[val]) == {0, 1}


def test_fold_split_argument_errors():
    labels = _labels()
    folds = make_folds(labels, k=3, seed=0)
    with pytest.raises(ValueError, match="no fold 7"):
        fold_split(folds, 7)
    with pytest.raises(ValueError, match="no `repeat` column"):
        fold_split(folds, 0, repeat=1)
    with pytest.raises(ValueError, match="give `repeat`"):
        fold_split(make_repeated_folds(labels, 3, 2, 0), 0)
    with pytest.raises(ValueError, match="cannot be split into 5 folds"):
        make_folds(labels.iloc[:4], k=5, seed=0)
