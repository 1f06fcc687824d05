"""Paired t-test over folds (against scipy) and per-class-pair DeLong tests."""

import numpy as np
import pytest
from scipy import stats

from cmdnet.evaluation.stats.delong import delong_roc_test
from cmdnet.evaluation.stats.paired import pair_score, pairwise_class_delong, paired_t_over_folds


def test_paired_t_matches_scipy_and_hand_formula():
    a = np.array([0.71, 0.69, 0.74, 0.70, 0.73])
    b = np.array([0.68, 0.67, 0.70, 0.69, 0.69])
    res = paired_t_over_folds(a, b)
    ref = stats.ttest_rel(a, b)
    assert res["t"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    d = a - b
    assert res["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(5)))
    assert res["df"] == 4 and res["mean_diff"] == pytest.approx(d.mean())


def test_paired_t_degenerate_and_invalid():
    assert paired_t_over_folds([0.5, 0.6], [0.5, 0.6])["p"] == 1.0
    with pytest.raises(ValueError, match="equal length"):
        paired_t_over_folds([0.5, 0.6, 0.7], [0.5, 0.6])


def test_pairwise_class_delong_restricts_to_the_two_classes():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], [20, 15, 10])
    pa = rng.dirichlet([1, 1, 1], size=45)
    pa[np.arange(45), labels] += 0.6
    pa /= pa.sum(axis=1, keepdims=True)
    pb = rng.dirichlet([1, 1, 1], size=45)
    out = pairwise_class_delong(labels, pa, pb)
    assert [(r["class_i"], r["class_j"]) for r in out] == [(0, 1), (0, 2), (1, 2)]
    assert [(r["n_i"], r["n_j"]) for r in out] == [(20, 15), (20, 10), (15, 10)]
    mask = labels != 1  # pair (0, 2)
    ref = delong_roc_test((labels[mask] == 2).astype(int), pair_score(pa[mask], 0, 2), pair_score(pb[mask], 0, 2))
    assert out[1]["auc_a"] == ref.auc_a and out[1]["p"] == ref.p
    assert all(r["auc_a"] > r["auc_b"] for r in out)


def test_pair_score_is_conditional_probability():
    probs = np.array([[0.2, 0.6, 0.2], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    assert pair_score(probs, 0, 2) == pytest.approx([0.5, 0.5, 0.0])
    assert pair_score(probs, 0, 1) == pytest.approx([0.75, 1.0, 0.5])
