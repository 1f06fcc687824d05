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


def _by_repeat(probs: np.ndarray) -> np.ndarray:
    """`(n, C)` -> `(1, n, C)`; `(R, n, C)` stays: the probabilities of R repeated partitions, patients aligned."""
    probs = np.asarray(probs, dtype=float)
    return probs[None] if probs.ndim == 2 else probs


def repeat_mean_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """The macro OvO AUC of each repeat's pooled out-of-fold probabilities `(R, n, C)` (or `(n, C)`), averaged."""
    return float(np.mean([macro_ovo_auc(labels, p) for p in _by_repeat(probs)]))


def _repeat_mean_replicates(labels: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.mean([macro_ovo_auc_replicates(labels, p, idx) for p in _by_repeat(probs)], axis=0)


def repeat_mean_auc_ci(labels: np.ndarray, probs: np.ndarray, n_boot: int = 2000, seed: int = 0,
                       alpha: float = 0.05) -> tuple[float, float]:
    """Percentile CI of `repeat_mean_auc`: each replicate resamples the patients once (stratified) and scores
    every repeat's predictions of those patients, so the interval describes patient sampling given the models."""
    per_repeat = _by_repeat(probs)
    labels, _ = check_labels_probs(labels, per_repeat[0])
    idx = _stratified_indices(labels, n_boot, seed)
    return _percentile_ci(_repeat_mean_replicates(labels, per_repeat, idx), alpha)


def paired_bootstrap_macro_auc(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray,
                               n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Paired stratified bootstrap comparison of the macro OvO AUCs of methods A and B.

    `probs_a`, `probs_b`: `(n, C)` probabilities of the same n patients in the same order, or `(R, n, C)` for R
    repeated partitions (the AUC is then the mean over repeats of each repeat's pooled AUC).
    Returns `auc_a`, `auc_b`, `diff` (A - B), `ci_diff`, `ci_a`, `ci_b` (percentile), `sd_diff`, `z`,
    `p` (two-sided), `n_boot`, `seed`.
    """
    if np.shape(probs_a) != np.shape(probs_b):
        raise ValueError(f"probs_a {np.shape(probs_a)} and probs_b {np.shape(probs_b)} differ in shape")
    probs_a, probs_b = _by_repeat(probs_a), _by_repeat(probs_b)
    for pa, pb in zip(probs_a, probs_b):
        labels, _ = check_labels_probs(labels, pa)
        check_labels_probs(labels, pb)
    auc_a = repeat_mean_auc(labels, probs_a)
    auc_b = repeat_mean_auc(labels, probs_b)
    idx = _stratified_indices(labels, n_boot, seed)
    boot = np.stack([_repeat_mean_replicates(labels, probs_a, idx),
                     _repeat_mean_replicates(labels, probs_b, idx)], axis=1)
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
