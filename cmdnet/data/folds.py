"""Patient-level stratified cross-validation folds (stage 4).

Each patient is one sample, so every image of a patient lands in the same fold. Folds are stratified
on the label with scikit-learn (`StratifiedKFold(shuffle=True)`), seeded, and independent of the
order of the input: patients are sorted by id before splitting. Patients whose label is missing
(e.g. no grade) are left out. The `fold` of a patient is the index of the fold in which it is tested.

The inner validation splits (model selection inside the training folds) are drawn here too, once per test fold,
and written beside the folds (`inner_splits`): every method and teacher of a test fold selects on the same
validation patients, anyone can check that none of them is a test patient, and the training jobs need no
scikit-learn. scikit-learn is imported inside the functions that use it, for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


def _labelled(labels: pd.Series, k: int) -> pd.Series:
    """Labels with missing values dropped, sorted by patient id, as int; checked against `k`."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got k={k}")
    if not labels.index.is_unique:
        dup = sorted(labels.index[labels.index.duplicated()].astype(str).unique())
        raise ValueError(f"duplicate patient ids in labels: {', '.join(dup)}")
    labels = labels.dropna()
    labels = labels.set_axis(labels.index.astype(str)).sort_index().astype("int64")
    if len(labels) < k:
        raise ValueError(f"{len(labels)} labelled patients cannot be split into {k} folds")
    return labels


def _fold_of(labels: pd.Series, splits) -> np.ndarray:
    fold = np.full(len(labels), -1, dtype="int64")
    for f, (_, test) in enumerate(splits):
        fold[test] = f
    return fold


def make_folds(labels: pd.Series, k: int, seed: int) -> pd.DataFrame:
    """Stratified `k`-fold split: DataFrame `patient_id`, `fold` (0..k-1), sorted by patient id.

    `labels`: integer class per patient, indexed by patient id (missing = left out).
    """
    from sklearn.model_selection import StratifiedKFold

    labels = _labelled(labels, k)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = _fold_of(labels, splitter.split(np.zeros(len(labels)), labels.to_numpy()))
    return pd.DataFrame({"patient_id": labels.index.to_numpy(dtype=object), "fold": fold})


def make_repeated_folds(labels: pd.Series, k: int, repeats: int, seed: int) -> pd.DataFrame:
    """`repeats` stratified `k`-fold splits (RepeatedStratifiedKFold, seeded).

    Returns the long table `patient_id`, `repeat` (0..repeats-1), `fold`: one row per patient and
    repeat, sorted by repeat then patient id.
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    if repeats < 1:
        raise ValueError(f"need at least 1 repeat, got {repeats}")
    labels = _labelled(labels, k)
    splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    splits = list(splitter.split(np.zeros(len(labels)), labels.to_numpy()))
    frames = [pd.DataFrame({"patient_id": labels.index.to_numpy(dtype=object), "repeat": r,
                            "fold": _fold_of(labels, splits[r * k:(r + 1) * k])})
              for r in range(repeats)]
    out = pd.concat(frames, ignore_index=True)
    out["repeat"] = out["repeat"].astype("int64")
    return out


def inner_validation_split(train_ids: Sequence[str], labels: pd.Series, fraction: float,
                           seed: int) -> tuple[list[str], list[str]]:
    """Split training patients into (inner training, validation) ids, stratified on the label.

    For model selection / early stopping inside the training folds: the test fold is never seen.
    The validation set holds `round(fraction * n)` patients, at least one per class that has two or
    more patients; a class with a single patient stays in the inner training set. Both lists are
    sorted by id.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    ids = sorted(map(str, train_ids))
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate ids in train_ids")
    y = labels.set_axis(labels.index.astype(str))
    absent = [i for i in ids if i not in y.index or pd.isna(y.get(i))]
    if absent:
        raise ValueError(f"no label for training patients: {', '.join(absent)}")
    y = y.loc[ids].astype("int64")
    counts = y.value_counts()
    singles = y.index[y.map(counts) < 2].tolist()
    pool = y.drop(index=singles)
    n_val = max(int(round(fraction * len(ids))), pool.nunique())
    if len(pool) < 2 or n_val >= len(pool):
        raise ValueError(f"{len(ids)} training patients are too few for a validation split of "
                         f"{fraction:g} stratified over {y.nunique()} classes")
    from sklearn.model_selection import train_test_split

    inner, val = train_test_split(pool.index.to_numpy(), test_size=n_val, random_state=seed,
                                  shuffle=True, stratify=pool.to_numpy())
    return sorted(list(inner) + singles), sorted(val)


def fold_split(folds_df: pd.DataFrame, fold: int, repeat: int | None = None
               ) -> tuple[list[str], list[str]]:
    """(train_ids, test_ids) of one fold: test = patients whose `fold` is `fold`, train = the rest.

    For a repeated table (with a `repeat` column) `repeat` must be given. The two lists are disjoint
    and together hold every patient of the (repeat's) table, in table order.
    """
    df = folds_df
    if "repeat" in df.columns:
        if repeat is None:
            raise ValueError("folds table has repeats: give `repeat`")
        if repeat not in set(df["repeat"]):
            raise ValueError(f"no repeat {repeat} in folds table (repeats: {sorted(set(df['repeat']))})")
        df = df[df["repeat"] == repeat]
    elif repeat is not None:
        raise ValueError("folds table has no `repeat` column, but repeat was given")
    if fold not in set(df["fold"]):
        raise ValueError(f"no fold {fold} in folds table (folds: {sorted(set(df['fold']))})")
    is_test = (df["fold"] == fold).to_numpy()
    ids = df["patient_id"].astype(str).to_numpy()
    return ids[~is_test].tolist(), ids[is_test].tolist()


def inner_splits(folds_df: pd.DataFrame, labels: pd.Series, fraction: float, seed: int) -> pd.DataFrame:
    """The inner validation split of every test fold of a repeated folds table: `repeat`, `fold` (the test fold),
    `patient_id` (each of its training patients) and `role` ("fit" or "val"). The split of (repeat, fold) is
    seeded with `derive_seed(seed, "inner-split", repeat, fold)`."""
    from cmdnet.seeds import derive_seed

    frames = []
    for repeat in sorted(folds_df["repeat"].unique()):
        for fold in sorted(folds_df.loc[folds_df["repeat"] == repeat, "fold"].unique()):
            train, _ = fold_split(folds_df, int(fold), repeat=int(repeat))
            fit, val = inner_validation_split(train, labels.loc[train], fraction,
                                              derive_seed(seed, "inner-split", int(repeat), int(fold)))
            frames.append(pd.DataFrame({"repeat": int(repeat), "fold": int(fold), "patient_id": fit + val,
                                        "role": ["fit"] * len(fit) + ["val"] * len(val)}))
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class FoldSplit:
    """The patients of one test fold."""

    train: list[str]      # the outer training patients
    test: list[str]
    fit: list[str]        # the part of `train` the weights are fitted on
    val: list[str]        # the inner validation split (selection), drawn from `train`


@dataclass(frozen=True)
class Partitions:
    """A repeated folds table and its inner validation splits (`results/folds/mvi*.parquet`)."""

    folds: pd.DataFrame
    inner: pd.DataFrame

    @classmethod
    def read(cls, folds: str | Path, inner: str | Path) -> "Partitions":
        return cls(pd.read_parquet(folds), pd.read_parquet(inner))

    def split(self, repeat: int, fold: int) -> FoldSplit:
        train, test = fold_split(self.folds, fold, repeat=repeat)
        rows = self.inner[(self.inner["repeat"] == repeat) & (self.inner["fold"] == fold)]
        fit = sorted(rows.loc[rows["role"] == "fit", "patient_id"].astype(str))
        val = sorted(rows.loc[rows["role"] == "val", "patient_id"].astype(str))
        if sorted(fit + val) != sorted(train) or not val:
            raise ValueError(f"the inner split of repeat {repeat} fold {fold} does not divide its training patients "
                             "(folds and inner splits from different runs?)")
        return FoldSplit(sorted(train), test, fit, val)


def make_partitions(labels: pd.Series, k: int, repeats: int, inner_fraction: float, seed: int) -> Partitions:
    """`repeats` stratified `k`-fold partitions of the labelled patients and the inner split of every test fold."""
    folds = make_repeated_folds(labels, k, repeats, seed)
    return Partitions(folds, inner_splits(folds, labels.set_axis(labels.index.astype(str)), inner_fraction, seed))
