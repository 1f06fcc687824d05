"""Paired significance tests between two methods evaluated on the same folds / the same patients."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.stats import ttest_rel

from cmdnet.evaluation.stats.corrected_t import corrected_resampled_t, corrected_t_from_csv, corrected_t_over_folds  # noqa: F401
from cmdnet.evaluation.stats.delong import delong_roc_test
from cmdnet.evaluation.stats.metrics import check_labels_probs


def paired_t_over_folds(values_a, values_b) -> dict:
    """Paired two-sided t-test over folds (`scipy.stats.ttest_rel`) of a metric of methods A and B.

    `values_a[k]`, `values_b[k]` are the metric on fold k. Returns `t`, `p`, `df` (= folds - 1),
    `mean_diff` (A - B), `n_folds`. With identical values in every fold, t = 0 and p = 1.
    """
    a = np.asarray(values_a, dtype=float)
    b = np.asarray(values_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired t-test needs two 1-D arrays of equal length; got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"paired t-test needs at least 2 folds; got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired t-test values contain NaN or infinite values")
    d = a - b
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):  # constant up to float rounding
        # zero variance of the differences: scipy returns nan; all-equal means no evidence of a difference
        t, p = (0.0, 1.0) if d[0] == 0 else (float(np.sign(d[0]) * np.inf), 0.0)
    else:
        res = ttest_rel(a, b)
        t, p = float(res.statistic), float(res.pvalue)
    return {"t": t, "p": p, "df": int(a.size - 1), "mean_diff": float(d.mean()), "n_folds": int(a.size)}


def pairwise_class_delong(labels, probs_a, probs_b) -> list[dict]:
    """DeLong test of methods A and B for every class pair (i, j), i < j, of a multi-class problem.

    Only samples of classes i and j are used; class j is the positive class and the score is the
    pairwise conditional probability s = p_j / (p_i + p_j) (0.5 where p_i + p_j = 0). One score per sample
    lets DeLong's test apply directly. Note: Hand & Till's pairwise AUC averages A(i|j) (score p_i) and
    A(j|i) (score p_j); the AUC of s equals both when the probabilities are those of a 2-class model and
    is in general close to, but not identical with, that average.

    Returns one dict per pair: `class_i`, `class_j`, `n_i`, `n_j`, `auc_a`, `auc_b`, `ci_a`, `ci_b`, `z`, `p`.
    """
    if np.shape(probs_a) != np.shape(probs_b):
        raise ValueError(f"probs_a {np.shape(probs_a)} and probs_b {np.shape(probs_b)} differ in shape")
    labels, probs_a = check_labels_probs(labels, probs_a)
    _, probs_b = check_labels_probs(labels, probs_b)
    out = []
    for i, j in combinations(range(probs_a.shape[1]), 2):
        mask = (labels == i) | (labels == j)
        y = (labels[mask] == j).astype(int)
        res = delong_roc_test(y, pair_score(probs_a[mask], i, j), pair_score(probs_b[mask], i, j))
        out.append({"class_i": i, "class_j": j, "n_i": int((y == 0).sum()), "n_j": int((y == 1).sum()),
                    "auc_a": res.auc_a, "auc_b": res.auc_b, "ci_a": list(res.ci_a), "ci_b": list(res.ci_b),
                    "z": res.z, "p": res.p})
    return out


def pair_score(probs: np.ndarray, i: int, j: int) -> np.ndarray:
    """s = p_j / (p_i + p_j): the score of class j against class i (0.5 where both are 0)."""
    pi, pj = probs[:, i], probs[:, j]
    total = pi + pj
    return np.divide(pj, total, out=np.full_like(pj, 0.5), where=total > 0)
