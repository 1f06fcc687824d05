"""DeLong's test for two correlated ROC curves (DeLong, DeLong & Clarke-Pearson 1988).

Computed with the mid-rank algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21:1389), which
gives exactly the DeLong structural components in O(n log n).

For m positives X_1..X_m and n negatives Y_1..Y_n, with psi(x, y) = 1 if x > y, 1/2 if x = y, 0 otherwise:

    AUC     = 1/(m n) sum_i sum_j psi(X_i, Y_j)
    V10(X_i) = 1/n sum_j psi(X_i, Y_j)          (placement of positive i)
    V01(Y_j) = 1/m sum_i psi(X_i, Y_j)          (placement of negative j)
    S = S10 / m + S01 / n                        (S10, S01: sample covariance matrices, ddof = 1,
                                                  of the placements across the two scores)
    z = (AUC_a - AUC_b) / sqrt(S_aa + S_bb - 2 S_ab),   p = 2 (1 - Phi(|z|))

The score direction is fixed: a higher score means "more positive". An AUC below 0.5 stays below 0.5
(pROC's `direction="auto"` would silently flip it; we never do). Confidence intervals are Wald intervals
AUC +- z_{1-alpha/2} sqrt(Var), clipped to [0, 1] as pROC's `ci.auc(method="delong")` does.
Verified against pROC's published test values on its `aSAH` data (tests/stats/test_delong.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from cmdnet.errors import InputError


@dataclass(frozen=True)
class DelongResult:
    """DeLong comparison of score A and score B on the same samples (A minus B)."""

    auc_a: float
    auc_b: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    var_a: float
    var_b: float
    cov: float
    z: float
    p: float
    ci_diff: tuple[float, float]
    n_positive: int
    n_negative: int

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("ci_a", "ci_b", "ci_diff"):
            d[k] = list(d[k])
        return d


def _check_binary(y_true: np.ndarray, scores: list[np.ndarray]) -> np.ndarray:
    y = np.asarray(y_true)
    values = set(np.unique(y).tolist())
    if not values <= {0, 1, True, False}:
        raise ValueError(f"y_true must be 0/1 (1 = positive); got values {sorted(values, key=str)}")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("DeLong needs both positive and negative samples; only one class is present")
    for s in scores:
        if s.shape != y.shape:
            raise ValueError(f"score shape {s.shape} does not match y_true shape {y.shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError("scores contain NaN or infinite values")
    return y


def delong_placements(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong placements of `scores (k, N)` for binary `y_true (N,)` (Sun & Xu mid-ranks).

    Returns `auc (k,)`, `v10 (k, m)` (one per positive), `v01 (k, n)` (one per negative).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    y = _check_binary(y_true, list(scores))
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tx = rankdata(pos, axis=1)  # mid-ranks: ties count one half
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    # tz - tx for a positive = (#negatives below it) + 0.5 (#negatives tied with it)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    auc = v10.mean(axis=1)
    return auc, v10, v01


def delong_covariance(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs `(k,)` and their DeLong covariance matrix `(k, k)` for `scores (k, N)`."""
    auc, v10, v01 = delong_placements(y_true, scores)
    m, n = v10.shape[1], v01.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong variance needs at least 2 positives and 2 negatives; got {m} and {n}")
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return auc, s10 / m + s01 / n


def _wald_ci(auc: float, var: float, alpha: float) -> tuple[float, float]:
    half = norm.ppf(1.0 - alpha / 2.0) * np.sqrt(max(var, 0.0))
    return float(max(auc - half, 0.0)), float(min(auc + half, 1.0))


def delong_ci(y_true: np.ndarray, score: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """AUC of `score` and its (1 - alpha) DeLong confidence interval: `(auc, lo, hi)`."""
    auc, cov = delong_covariance(y_true, np.asarray(score, dtype=float)[None, :])
    lo, hi = _wald_ci(float(auc[0]), float(cov[0, 0]), alpha)
    return float(auc[0]), lo, hi


def delong_roc_test(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
                    alpha: float = 0.05) -> DelongResult:
    """Two-sided DeLong test of AUC(score_a) = AUC(score_b) on the same samples."""
    scores = np.vstack([np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)])
    auc, cov = delong_covariance(y_true, scores)
    y = np.asarray(y_true).astype(bool)
    diff = float(auc[0] - auc[1])
    var_diff = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var_diff > 0:
        z = diff / np.sqrt(var_diff)
        p = float(2.0 * norm.sf(abs(z)))
    elif diff == 0:
        z, p = 0.0, 1.0  # identical curves (pROC's special case)
    else:
        z, p = float(np.sign(diff) * np.inf), 0.0
    zq = norm.ppf(1.0 - alpha / 2.0) * np.sqrt(max(var_diff, 0.0))
    return DelongResult(
        auc_a=float(auc[0]), auc_b=float(auc[1]),
        ci_a=_wald_ci(float(auc[0]), float(cov[0, 0]), alpha),
        ci_b=_wald_ci(float(auc[1]), float(cov[1, 1]), alpha),
        var_a=float(cov[0, 0]), var_b=float(cov[1, 1]), cov=float(cov[0, 1]),
        z=float(z), p=p, ci_diff=(float(diff - zq), float(diff + zq)),
        n_positive=int(y.sum()), n_negative=int((~y).sum()),
    )


def _truth_to_binary(truth: pd.Series, positive: str | float | None, path: Path) -> tuple[np.ndarray, object]:
    """0/1 vector from a truth column, and the value taken as positive."""
    if truth.isna().any():
        rows = (np.flatnonzero(truth.isna().to_numpy()) + 2)[:5].tolist()
        raise InputError(f"truth column {truth.name!r} has empty values (CSV lines {rows})", path=path)
    values = truth.unique().tolist()
    if positive is not None:
        if pd.api.types.is_numeric_dtype(truth) and not pd.api.types.is_bool_dtype(truth):
            try:
                pos_value: object = float(positive)
            except ValueError:
                raise InputError(f"--positive {positive!r} is not a number but truth column {truth.name!r} "
                                 f"is numeric (values {sorted(values)})", path=path) from None
            y = truth.to_numpy(dtype=float) == pos_value
            pos_value = truth[y].iloc[0] if y.any() else positive
        else:
            text = truth.astype(str).str.strip()
            pos_value = str(positive).strip()
            y = (text == pos_value).to_numpy()
        if not y.any():
            raise InputError(f"positive value {positive!r} does not occur in truth column {truth.name!r} "
                             f"(values {sorted(map(str, values))})", path=path)
    else:
        if len(values) != 2:
            raise InputError(f"truth column {truth.name!r} must have exactly two values, or give the positive "
                             f"value; found {len(values)}: {sorted(map(str, values))[:10]}", path=path)
        try:
            pos_value = sorted(values)[-1]
        except TypeError:
            pos_value = sorted(values, key=str)[-1]
        y = (truth == pos_value).to_numpy()
    if y.all() or not y.any():
        raise InputError(f"only one class present in truth column {truth.name!r} "
                         f"(positive = {pos_value!r}); DeLong needs positives and negatives", path=path)
    if isinstance(pos_value, np.generic):
        pos_value = pos_value.item()
    return y.astype(int), pos_value


def _score_column(frame: pd.DataFrame, name: str, path: Path) -> np.ndarray:
    raw = frame[name]
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = numeric.isna() & raw.notna()
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy()) + 2)[:5].tolist()
        examples = raw[bad].astype(str).head(3).tolist()
        raise InputError(f"score column {name!r} has non-numeric values {examples} (CSV lines {rows})",
                         path=path)
    if numeric.isna().any():
        rows = (np.flatnonzero(numeric.isna().to_numpy()) + 2)[:5].tolist()
        raise InputError(f"score column {name!r} has empty/NaN values (CSV lines {rows})", path=path)
    values = numeric.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise InputError(f"score column {name!r} has infinite values", path=path)
    return values


def delong_from_csv(csv_path: str | Path, *, truth: str, score_a: str, score_b: str,
                    positive: str | float | None = None, alpha: float = 0.05) -> dict:
    """DeLong test of two score columns of a CSV; a JSON-serialisable dict (used by `cmdnet stats delong`).

    `positive` names the positive value of the truth column (compared numerically when the column is
    numeric, as stripped text otherwise). Without it the truth column must hold exactly two values and
    the larger (sorted last; 1 for 0/1) is positive. Higher scores mean "more positive".
    """
    path = Path(csv_path)
    if not path.is_file():
        raise InputError("CSV file not found", path=path)
    frame = pd.read_csv(path)
    missing = [c for c in (truth, score_a, score_b) if c not in frame.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}; the CSV has {list(frame.columns)}", path=path)
    if len(frame) == 0:
        raise InputError("the CSV has no rows", path=path)
    y, pos_value = _truth_to_binary(frame[truth], positive, path)
    a = _score_column(frame, score_a, path)
    b = _score_column(frame, score_b, path)
    try:
        res = delong_roc_test(y, a, b, alpha=alpha)
    except ValueError as exc:
        raise InputError(str(exc), path=path) from exc
    out = res.as_dict()
    out.update({"positive": pos_value, "truth": truth, "score_a": score_a, "score_b": score_b,
                "auc_diff": res.auc_a - res.auc_b, "confidence_level": 1.0 - alpha,
                "method": "DeLong test for two correlated ROC curves (two-sided; higher score = positive)"})
    return out
