"""Stratified bootstrap: CIs contain the point estimate, are reproducible for a seed, and the paired test
detects a real difference but not a null one."""

import numpy as np
import pytest

from cmdnet.evaluation.stats.bootstrap import bootstrap_ci, paired_bootstrap_macro_auc
from cmdnet.evaluation.stats.metrics import macro_ovo_auc


def _case(seed=0, n=90, signal=1.5):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], n // 3)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += signal
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs, rng


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    labels, probs, _ = _case()
    ci1 = bootstrap_ci(labels, probs, macro_ovo_auc, n_boot=150, seed=7)
    ci2 = bootstrap_ci(labels, probs, macro_ovo_auc, n_boot=150, seed=7)
    ci3 = bootstrap_ci(labels, probs, macro_ovo_auc, n_boot=150, seed=8)
    assert ci1 == ci2
    assert ci1 != ci3
    assert ci1[0] < macro_ovo_auc(labels, probs) < ci1[1]
    assert 0.02 < ci1[1] - ci1[0] < 0.4


def test_paired_bootstrap_detects_difference_and_not_null():
    labels, good, rng = _case(signal=2.0)
    noise = rng.dirichlet([1, 1, 1], size=len(labels))
    better = paired_bootstrap_macro_auc(labels, good, noise, n_boot=150, seed=0)
    assert better["diff"] == pytest.approx(better["auc_a"] - better["auc_b"])
    assert better["diff"] > 0.2 and better["p"] < 1e-3
    assert better["ci_diff"][0] < better["diff"] < better["ci_diff"][1]
    assert better["ci_a"][0] < better["auc_a"] < better["ci_a"][1]
    same = paired_bootstrap_macro_auc(labels, good, good, n_boot=20, seed=0)
    assert same["diff"] == 0 and same["p"] == 1.0
    again = paired_bootstrap_macro_auc(labels, good, noise, n_boot=150, seed=0)
    assert again == better


def test_paired_bootstrap_rejects_misaligned_inputs():
    labels, probs, _ = _case()
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap_macro_auc(labels, probs, probs[:, :2], n_boot=5)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_vectorised_replicates_equal_scikit_learn_on_each_resample(n_classes):
    """The bootstrap's fast path must give exactly the per-resample macro AUC, ties included."""
    from cmdnet.evaluation.stats.bootstrap import _stratified_indices
    from cmdnet.evaluation.stats.metrics import macro_ovo_auc_replicates

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(n_classes), [20, 13, 7][:n_classes])
    probs = rng.dirichlet(np.ones(n_classes), size=labels.size)
    probs[::5] = probs[0]                       # tied scores across classes
    probs = np.round(probs, 2)
    probs /= probs.sum(axis=1, keepdims=True)
    idx = _stratified_indices(labels, 60, seed=1)
    fast = macro_ovo_auc_replicates(labels, probs, idx)
    slow = np.array([macro_ovo_auc(labels[i], probs[i]) for i in idx])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert np.ptp(fast) > 0.05, "resamples should differ"
