"""`clinical_lr`: the clinical-only reference row of the MVI tables (not an MRI-only method).

A multinomial logistic regression (scikit-learn, L2, lbfgs) on the cleaned clinical table, preprocessed
exactly as the teacher's clinical vector (`cmdnet.data.clinical.ClinicalPreprocessor`: median/mode imputation,
missing indicators, one-hot, standardisation). It shows what a linear model of the clinical items alone predicts:
a yardstick for the teacher (MRI + the same items), whose use of the items a permutation probe shows
(docs/teacher.md).

Fold isolation, as for the networks (`cmdnet.mvi.training.fold`): for each repeat and test fold the model
(preprocessor and regression) is fitted on that fold's training patients and predicts its test patients; a second
fit on the inner fit split predicts the inner validation split, whose predictions choose the any-MVI threshold
(`table_mvi_binary`) as the networks' selected epochs do. No test patient enters a fit or a choice.
The inverse regularisation strength `C` is either fixed (default `c=1.0`, scikit-learn's default: the "plain
logistic regression" of the issue) or, with `c="cv"`, chosen from `C_GRID` by a stratified inner
cross-validation of the training patients only, the preprocessor refitted inside every inner split (a
scikit-learn `Pipeline` in `GridSearchCV`), scored by the multinomial log loss (a proper score that stays
defined on small inner folds). No test patient enters either choice. The default was chosen on development
cohorts (synthetic seeds 11-13, not the default cohort): the fixed C gave the higher pooled AUC on all three
(0.742 / 0.711 / 0.665 against 0.697 / 0.688 / 0.658 with the inner CV; docs/teacher.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from cmdnet.data.clinical import ClinicalPreprocessor
from cmdnet.data.folds import Partitions
from cmdnet.labels import MVI_CLASSES
from cmdnet.mvi.training.fold import MviData, prediction_frame

N_CLASSES = len(MVI_CLASSES)
C_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
INNER_SPLITS = 5
MAX_ITER = 2000


class ClinicalFeatures(BaseEstimator, TransformerMixin):
    """scikit-learn wrapper of `ClinicalPreprocessor`: cleaned clinical DataFrame -> float feature matrix."""

    def __init__(self, dictionary: pd.DataFrame):
        self.dictionary = dictionary

    def fit(self, X: pd.DataFrame, y=None) -> "ClinicalFeatures":
        self.preprocessor_ = ClinicalPreprocessor(self.dictionary).fit(X)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.preprocessor_.transform(X).astype(np.float64)


def _regression(c: float, seed: int) -> LogisticRegression:
    # lbfgs on more than two classes is the multinomial (softmax) model; L2 is the default penalty.
    return LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER, random_state=seed)


def _inner_splits(labels: np.ndarray) -> int:
    return int(min(INNER_SPLITS, np.bincount(labels, minlength=N_CLASSES).min()))


def fit_clinical_lr(clinical: pd.DataFrame, labels: pd.Series, dictionary: pd.DataFrame, *,
                    c: float | str = 1.0, seed: int = 0) -> tuple[ClinicalPreprocessor, LogisticRegression, float]:
    """Fit preprocessor + multinomial LR on the given (training) patients only.

    `clinical`: cleaned table of exactly the training patients (rows aligned with `labels`); `labels`: 0/1/2.
    `c`: a positive float, or `"cv"` to choose C from `C_GRID` by inner stratified CV (log loss); with fewer
    than 2 patients in some class the inner CV is impossible and `ValueError` says so.
    Returns `(preprocessor, regression, chosen_C)`.
    """
    # A few dozen patients: one BLAS thread. More threads only spin (10 s instead of 1 s on a busy 2-core box).
    with threadpool_limits(limits=1):
        return _fit(clinical, labels, dictionary, c, seed)


def _fit(clinical: pd.DataFrame, labels: pd.Series, dictionary: pd.DataFrame, c: float | str,
         seed: int) -> tuple[ClinicalPreprocessor, LogisticRegression, float]:
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != len(clinical):
        raise ValueError(f"{len(clinical)} clinical rows for {len(y)} labels")
    missing = sorted(set(range(N_CLASSES)) - set(y.tolist()))
    if missing:
        raise ValueError(f"clinical_lr needs every MVI class among the training patients; absent: {missing}")
    if c == "cv":
        n_splits = _inner_splits(y)
        if n_splits < 2:
            raise ValueError("clinical_lr with c='cv' needs at least 2 training patients of every class; "
                             "give a fixed c instead")
        search = GridSearchCV(Pipeline([("features", ClinicalFeatures(dictionary)), ("lr", _regression(1.0, seed))]),
                              {"lr__C": list(C_GRID)}, scoring="neg_log_loss",
                              cv=StratifiedKFold(n_splits, shuffle=True, random_state=seed), refit=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(clinical, y)
        chosen = float(search.best_params_["lr__C"])
    elif isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0:
        chosen = float(c)
    else:
        raise ValueError(f"c must be a positive number or 'cv', got {c!r}")
    preprocessor = ClinicalPreprocessor(dictionary).fit(clinical)
    regression = _regression(chosen, seed).fit(preprocessor.transform(clinical).astype(np.float64), y)
    return preprocessor, regression, chosen


def predict_proba(preprocessor: ClinicalPreprocessor, regression: LogisticRegression,
                  clinical: pd.DataFrame) -> np.ndarray:
    """Class probabilities `(n, 3)`, rows in `clinical` order."""
    return regression.predict_proba(preprocessor.transform(clinical).astype(np.float64))


def clinical_lr_predictions(data: MviData, partitions: Partitions, *, c: float | str = 1.0, seed: int = 0
                            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold predictions on every repeat's test folds, and inner-validation predictions (fitted on each
    fold's inner fit split), in the frames of `cmdnet.mvi.training.fold.predict_fold`."""
    from cmdnet.seeds import derive_seed

    if data.clinical is None or data.dictionary is None:
        raise ValueError("clinical_lr needs the cleaned clinical table and the clinical dictionary")
    oof, validation = [], []
    for repeat in sorted(partitions.folds["repeat"].unique()) if "repeat" in partitions.folds else [0]:
        for fold in sorted(partitions.folds["fold"].unique()):
            split = partitions.split(int(repeat), int(fold))
            fold_seed = derive_seed(seed, "clinical_lr", int(repeat), int(fold))
            for train, test, out in ((split.train, split.test, oof), (split.fit, split.val, validation)):
                pre, lr, _ = fit_clinical_lr(data.clinical.loc[train], data.labels.loc[train], data.dictionary,
                                             c=c, seed=fold_seed)
                probs = predict_proba(pre, lr, data.clinical.loc[test])
                out.append(prediction_frame(list(test), int(repeat), int(fold),
                                            np.asarray(data.labels.loc[test], dtype=np.int64), probs))
    return pd.concat(oof, ignore_index=True), pd.concat(validation, ignore_index=True)
