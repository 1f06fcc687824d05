"""Stratified bootstrap over patients: CIs of a metric and a paired test of two macro AUCs.

Resampling is stratified by true class (each class is resampled with replacement to its own size), as
pROC's default `boot.stratified=TRUE`: every replicate holds every class, so the macro one-vs-one AUC is
always defined and no replicate has to be dropped. Percentile intervals.

Paired test (pROC's `roc.test(method="bootstrap")` applied to the macro OvO AUC): the same resampled
patients are scored by both methods; with D = AUC_a - AUC_b on the full data and s = SD of the replicate
differences, z = D / s and p = 2 (1 - Phi(|z|)).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import norm

from cmdnet.evaluation.stats.metrics import check_labels_probs, macro_ovo_auc, macro_ovo_auc_replicates


def _stratified_indices(labels: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """`(n_boot, n)` indices; replicate b resamples each class's indices with replacement."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts = [g[rng.integers(0, g.size, size=(n_boot, g.size))] for g in groups]
    return np.concatenate(parts, axis=1)


def _percentile_ci(values: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(labels: np.ndarray, probs: np.ndarray, metric_fn: Callable[[np.ndarray, np.ndarray], float],
                 n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile (1 - alpha) CI of `metric_fn(labels, probs) -> float` under stratified resampling."""
    labels, probs = check_labels_probs(labels, probs)
    metric_fn(labels, probs)  # its own checks on the full data (e.g. softmax rows) before any resampling
    idx = _stratified_indices(labels, n_boot, seed)
    if metric_fn is macro_ovo_auc:
        values = macro_ovo_auc_replicates(labels, probs, idx)
    else:
        values = np.array([metric_fn(labels[i], probs[i]) for i in idx], dtype=float)
    return _percentile_ci(values, alpha)


def paired_bootstrap_macro_auc(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray,
                               n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Paired stratified bootstrap comparison of the macro OvO AUCs of methods A and B.

    `probs_a`, `probs_b`: `(n, C)` probabilities of the same n patients in the same order.
    Returns `auc_a`, `auc_b`, `diff` (A - B), `ci_diff`, `ci_a`, `ci_b` (percentile), `sd_diff`, `z`,
    `p` (two-sided), `n_boot`, `seed`.
    """
    if np.shape(probs_a) != np.shape(probs_b):
        raise ValueError(f"probs_a {np.shape(probs_a)} and probs_b {np.shape(probs_b)} differ in shape")
    labels, probs_a = check_labels_probs(labels, probs_a)
    _, probs_b = check_labels_probs(labels, probs_b)
    auc_a = macro_ovo_auc(labels, probs_a)
    auc_b = macro_ovo_auc(labels, probs_b)
    idx = _stratified_indices(labels, n_boot, seed)
    boot = np.stack([macro_ovo_auc_replicates(labels, probs_a, idx),
                     macro_ovo_auc_replicates(labels, probs_b, idx)], axis=1)
    diffs = boot[:, 0] - boot[:, 1]
    diff = auc_a - auc_b
    sd = float(np.std(diffs, ddof=1)) if n_boot > 1 else float("nan")
    if not np.isfinite(sd):
        z, p = float("nan"), float("nan")  # one replicate gives no spread to test against
    elif sd > 0:
        z = diff / sd
        p = float(2.0 * norm.sf(abs(z)))
    elif diff == 0:
        z, p = 0.0, 1.0
    else:
        z, p = float(np.sign(diff) * np.inf), 0.0
    return {
        "auc_a": auc_a, "auc_b": auc_b, "diff": diff,
        "ci_diff": list(_percentile_ci(diffs, alpha)),
        "ci_a": list(_percentile_ci(boot[:, 0], alpha)),
        "ci_b": list(_percentile_ci(boot[:, 1], alpha)),
        "sd_diff": sd, "z": float(z), "p": p, "n_boot": int(n_boot), "seed": int(seed),
        "method": "paired stratified bootstrap of the macro one-vs-one AUC (two-sided, z = diff / SD)",
    }
