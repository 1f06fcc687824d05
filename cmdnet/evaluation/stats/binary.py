"""A binary endpoint read from multi-class out-of-fold predictions: any MVI (M0 vs M1 + M2), or high grade.

Predictions frames (out-of-fold test predictions, and the inner-validation predictions of the same
models) hold `label` (class index), `prob_0 .. prob_{C-1}`, `fold`, optionally `repeat` (repeated CV)
and `patient_id`. The event is "label in `positive_classes`" (default: every class but 0, i.e. M1 or
M2 for MVI, high grade for the 2-class grading predictions) and its probability is

    p_event = sum_{c in positive_classes} prob_c          (MVI: P(M1) + P(M2) = 1 - P(M0))

Operating point (threshold) rule, chosen on the inner validation split of each outer fold, never on the
test fold: the threshold maximising Youden's J = sensitivity + specificity - 1 of the validation
predictions, among the candidates "lowest validation score" and the midpoints between consecutive
distinct validation scores, a patient being called positive when p_event >= threshold. Ties in J go to
the lowest threshold (the most sensitive one: a missed MVI costs more than an extra work-up). Midpoints,
not observed scores, so a test score between two validation scores is not decided by float equality.

Per repeat, every patient has exactly one out-of-fold prediction, so the metrics of a repeat are computed
on its pooled predictions (each patient dichotomised at its own fold's threshold): AUC with DeLong's 95%
CI (`delong.delong_ci`), sensitivity, specificity, Brier score = mean (p_event - y)^2, calibration
intercept and slope (`calibration`). Over R repeats the table reports the mean (and SD when R >= 2) of the
per-repeat values: the DeLong CI describes patient sampling given the trained models, the spread across
repeats the choice of partition.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from cmdnet.evaluation.stats.calibration import calibration_intercept, calibration_slope, check_binary_probs
from cmdnet.evaluation.stats.delong import delong_ci
from cmdnet.evaluation.stats.metrics import prob_columns

BINARY_ENDPOINT_COLUMNS = ["auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "brier",
                           "calibration_intercept", "calibration_slope"]


def event_probability(probs, positive_classes: Iterable[int] | None = None) -> np.ndarray:
    """p_event `(n,)` = sum of the `probs (n, C)` columns of `positive_classes` (default 1..C-1), in [0, 1]."""
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probs must have shape (n, C) with C >= 2; got {probs.shape}")
    classes = _positive_classes(positive_classes, probs.shape[1])
    return np.clip(probs[:, classes].sum(axis=1), 0.0, 1.0)  # softmax rows may exceed 1 by rounding


def event_labels(labels, n_classes: int, positive_classes: Iterable[int] | None = None) -> np.ndarray:
    """0/1 `(n,)`: 1 where the class index is one of `positive_classes` (default 1..C-1)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.all(np.equal(np.mod(labels, 1), 0)):
        raise ValueError("labels must be a 1-D array of integer class indices")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}; got values {sorted(set(labels.tolist()))}")
    return np.isin(labels, _positive_classes(positive_classes, n_classes)).astype(int)


def _positive_classes(positive_classes: Iterable[int] | None, n_classes: int) -> list[int]:
    classes = list(range(1, n_classes)) if positive_classes is None else sorted(set(positive_classes))
    if not classes or any(c < 0 or c >= n_classes for c in classes) or len(classes) == n_classes:
        raise ValueError(f"positive classes must be a non-empty proper subset of 0..{n_classes - 1}; "
                         f"got {classes}")
    return classes


def youden_threshold(labels, scores) -> tuple[float, float]:
    """(threshold, J): the Youden-optimal threshold of `scores` for 0/1 `labels` (rule in the module docstring).

    `scores (n,)`: event probabilities in [0, 1]. Positive call: score >= threshold. J = sensitivity +
    specificity - 1 at that threshold; constant scores give (that score, 0): everyone called positive.
    """
    y, s = check_binary_probs(labels, scores)
    if y.all() or not y.any():
        raise ValueError(f"a threshold needs positives and negatives; only class {int(y[0])} is present")
    distinct = np.unique(s)
    candidates = np.concatenate([distinct[:1], (distinct[:-1] + distinct[1:]) / 2.0])
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    sensitivity = 1.0 - np.searchsorted(pos, candidates, side="left") / pos.size  # share of pos >= t
    specificity = np.searchsorted(neg, candidates, side="left") / neg.size  # share of neg < t
    j = sensitivity + specificity - 1.0
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])  # candidates ascend: first = lowest threshold
    return float(candidates[best]), float(j[best])


def sensitivity_specificity(labels, scores, thresholds) -> tuple[float, float]:
    """Sensitivity and specificity of the calls `scores >= thresholds` (a scalar or one per sample)."""
    y, s = check_binary_probs(labels, scores)
    call = s >= np.broadcast_to(np.asarray(thresholds, dtype=float), s.shape)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    sens = float(np.sum(call & (y == 1)) / n_pos) if n_pos else float("nan")
    spec = float(np.sum(~call & (y == 0)) / n_neg) if n_neg else float("nan")
    return sens, spec


def binary_endpoint_metrics(labels, probs, thresholds, *, alpha: float = 0.05) -> dict[str, float]:
    """AUC (DeLong CI), sensitivity/specificity at `thresholds`, Brier score, calibration intercept and slope.

    `labels (n,)` 0/1, `probs (n,)` event probabilities, `thresholds` a scalar or `(n,)` (each patient's
    fold threshold). Returns `n`, `n_events` and the `BINARY_ENDPOINT_COLUMNS`.
    """
    y, p = check_binary_probs(labels, probs)
    auc, lo, hi = delong_ci(y, p, alpha=alpha)
    sens, spec = sensitivity_specificity(y, p, thresholds)
    return {"n": int(y.size), "n_events": int(y.sum()), "auc": auc, "auc_ci_low": lo, "auc_ci_high": hi,
            "sensitivity": sens, "specificity": spec, "brier": float(brier_score_loss(y, p)),
            "calibration_intercept": calibration_intercept(y, p), "calibration_slope": calibration_slope(y, p)}


def _fold_keys(pred: pd.DataFrame) -> list[str]:
    return ["repeat", "fold"] if "repeat" in pred.columns else ["fold"]


def _event_frame(pred: pd.DataFrame, positive_classes: Iterable[int] | None, what: str) -> pd.DataFrame:
    """The fold columns plus `y` (0/1 event) and `p` (event probability) of a predictions frame."""
    keys = _fold_keys(pred)
    missing = [c for c in [*keys, "label"] if c not in pred.columns]
    if missing:
        raise ValueError(f"{what} lack columns {missing}; columns are {list(pred.columns)}")
    pcols = prob_columns(pred)
    probs = pred[pcols].to_numpy(dtype=float)
    if not np.all(np.isfinite(probs)):
        raise ValueError(f"{what} have NaN or infinite probabilities")
    out = pred[keys].copy()
    out["y"] = event_labels(pred["label"].to_numpy(), len(pcols), positive_classes)
    out["p"] = event_probability(probs, positive_classes)
    return out


def fold_thresholds(validation_pred: pd.DataFrame, positive_classes: Iterable[int] | None = None
                    ) -> pd.DataFrame:
    """One Youden threshold per outer fold from its inner-validation predictions.

    `validation_pred`: predictions of each (repeat, fold)'s final model on that fold's inner validation
    patients (never its test patients). Returns `repeat` (if present), `fold`, `threshold`, `youden_j`,
    `n_validation`, sorted by fold.
    """
    events = _event_frame(validation_pred, positive_classes, "validation predictions")
    keys = _fold_keys(events)
    rows = []
    for key, group in events.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        try:
            threshold, j = youden_threshold(group["y"].to_numpy(), group["p"].to_numpy())
        except ValueError as exc:
            where = ", ".join(f"{c}={k}" for c, k in zip(keys, key))
            raise ValueError(f"validation predictions of {where}: {exc}") from exc
        rows.append({**dict(zip(keys, key)), "threshold": threshold, "youden_j": j, "n_validation": len(group)})
    return pd.DataFrame(rows)


def binary_endpoint_by_repeat(test_pred: pd.DataFrame, validation_pred: pd.DataFrame, *,
                              positive_classes: Iterable[int] | None = None,
                              alpha: float = 0.05) -> pd.DataFrame:
    """Binary-endpoint metrics of one method's pooled out-of-fold predictions, one row per repeat.

    `test_pred`: out-of-fold test predictions (every patient once per repeat). `validation_pred`: the
    same models' inner-validation predictions, giving each fold's threshold (`fold_thresholds`); every
    test fold needs one. Returns `repeat` (0 when the frames have no repeat column), `n`, `n_events`
    and the `BINARY_ENDPOINT_COLUMNS`.
    """
    if ("repeat" in test_pred.columns) != ("repeat" in validation_pred.columns):
        raise ValueError("test and validation predictions must both have, or both lack, a `repeat` column")
    events = _event_frame(test_pred, positive_classes, "test predictions")
    _check_once_per_repeat(test_pred)
    thresholds = fold_thresholds(validation_pred, positive_classes)
    keys = _fold_keys(events)
    merged = events.merge(thresholds[[*keys, "threshold"]], on=keys, how="left")
    if merged["threshold"].isna().any():
        odd = merged.loc[merged["threshold"].isna(), keys].drop_duplicates().to_dict("records")[:5]
        raise ValueError(f"no validation predictions (hence no threshold) for test folds {odd}")
    if "repeat" not in merged.columns:
        merged["repeat"] = 0
    rows = []
    for repeat, group in merged.groupby("repeat", sort=True):
        try:
            values = binary_endpoint_metrics(group["y"].to_numpy(), group["p"].to_numpy(),
                                             group["threshold"].to_numpy(), alpha=alpha)
        except ValueError as exc:
            raise ValueError(f"repeat {repeat}: {exc}") from exc
        rows.append({"repeat": int(repeat), **values})
    return pd.DataFrame(rows)


def pooled_auc_by_repeat(pred: pd.DataFrame, *, positive_classes: Iterable[int] | None = None,
                         alpha: float = 0.05) -> pd.DataFrame:
    """AUC of each repeat's pooled out-of-fold predictions (one per patient) with its DeLong CI.

    For the grading tables (4-fold CV x 10 repeats): `pred` holds `label`, `prob_0`, `prob_1`, `fold`,
    `repeat` (and `patient_id`) of one method. Returns `repeat`, `n`, `n_events`, `auc`, `ci_low`,
    `ci_high`, sorted by repeat; `summarise_over_repeats` summarises it.
    """
    events = _event_frame(pred, positive_classes, "predictions")
    _check_once_per_repeat(pred)
    if "repeat" not in events.columns:
        events["repeat"] = 0
    rows = []
    for repeat, group in events.groupby("repeat", sort=True):
        try:
            auc, lo, hi = delong_ci(group["y"].to_numpy(), group["p"].to_numpy(), alpha=alpha)
        except ValueError as exc:
            raise ValueError(f"repeat {repeat}: {exc}") from exc
        rows.append({"repeat": int(repeat), "n": len(group), "n_events": int(group["y"].sum()),
                     "auc": auc, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def summarise_over_repeats(per_repeat: pd.DataFrame, columns: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per column: `mean` over repeats, `sd` (sample SD, ddof = 1; NaN for one repeat), `min`, `max`, `n_repeats`.

    A CI column summarised this way (e.g. the mean of the per-repeat DeLong bounds) is the typical
    per-repeat interval, not an interval for the mean over repeats; label it so in a table.
    """
    missing = [c for c in columns if c not in per_repeat.columns]
    if missing:
        raise ValueError(f"per-repeat frame lacks columns {missing}; it has {list(per_repeat.columns)}")
    if len(per_repeat) == 0:
        raise ValueError("per-repeat frame has no rows")
    out = {}
    for column in columns:
        values = per_repeat[column].to_numpy(dtype=float)
        out[column] = {"mean": float(np.mean(values)),
                       "sd": float(np.std(values, ddof=1)) if values.size > 1 else float("nan"),
                       "min": float(np.min(values)), "max": float(np.max(values)), "n_repeats": int(values.size)}
    return out


def _check_once_per_repeat(pred: pd.DataFrame) -> None:
    """Pooling a repeat needs each patient once in it (when patient ids are given)."""
    if "patient_id" not in pred.columns:
        return
    keys = ["repeat", "patient_id"] if "repeat" in pred.columns else ["patient_id"]
    dup = pred.duplicated(keys, keep=False)
    if dup.any():
        odd = pred.loc[dup, keys].drop_duplicates().head(5).to_dict("records")
        raise ValueError(f"patients with more than one out-of-fold prediction in a repeat: {odd}")
