"""Holm's step-down adjustment: hand examples (R's p.adjust) and the step-down rejection rule."""

import numpy as np
import pytest

from cmdnet.evaluation.stats.multiplicity import holm


def test_holm_matches_hand_computed_p_adjust():
    # sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03,
    # 0.06, 0.06; back in input order (R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_nan_is_not_a_test_and_stays_nan():
    out = holm([0.01, np.nan, 0.04])  # m = 2: 0.01 x 2 = 0.02, 0.04 x 1 -> 0.04
    assert np.isnan(out[1]), "a comparison that could not be made must stay NaN"
    assert (out[0], out[2]) == pytest.approx((0.02, 0.04), abs=1e-15)
    assert np.isnan(holm([np.nan, np.nan])).all() and holm([]).shape == (0,)


def test_holm_caps_at_one_and_ties_get_equal_values():
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([0.02, 0.02, 0.5]) == pytest.approx([0.06, 0.06, 0.5])
    assert holm([0.03]) == pytest.approx([0.03]), "one test: no adjustment"


@pytest.mark.parametrize("seed", range(5))
def test_holm_rejections_equal_the_step_down_procedure(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.1, 7) ** 1.5
    for alpha in (0.01, 0.05, 0.1):
        order = np.argsort(p)
        rejected = np.zeros(p.size, dtype=bool)
        for rank, index in enumerate(order):  # reject p_(i) <= alpha / (m - i + 1) until the first failure
            if p[index] > alpha / (p.size - rank):
                break
            rejected[index] = True
        assert np.array_equal(holm(p) <= alpha, rejected), f"alpha={alpha}: adjusted p-values disagree with Holm"
    assert np.all(holm(p) >= p), "adjusted p-values are never below the raw ones"


@pytest.mark.parametrize("bad,message", [([0.1, 1.2], r"\[0, 1\]"), ([-0.1], r"\[0, 1\]"), ([[0.1]], "1-D")])
def test_holm_rejects_values_that_are_not_p_values(bad, message):
    with pytest.raises(ValueError, match=message):
        holm(bad)
