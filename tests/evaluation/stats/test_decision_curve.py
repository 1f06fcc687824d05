"""Decision-curve analysis (Vickers & Elkin 2006): hand example, references, invalid thresholds."""

import numpy as np
import pytest

from cmdnet.evaluation.stats.decision_curve import DEFAULT_THRESHOLDS, decision_curve


def test_net_benefit_hand_example():
    y = [1, 1, 0, 0, 1]
    p = [0.9, 0.6, 0.7, 0.2, 0.3]
    curve = decision_curve(y, p, [0.25, 0.5]).set_index("threshold")
    # pt = 0.5 (odds 1): treated p >= 0.5 -> 0.9 (event), 0.6 (event), 0.7 (no event): 2/5 - 1/5 x 1 = 0.2
    # pt = 0.25 (odds 1/3): treated 0.9, 0.6, 0.7, 0.3 -> TP 3, FP 1: 3/5 - 1/5 x 1/3 = 0.5333...
    assert curve.loc[0.5, "net_benefit"] == pytest.approx(0.2)
    assert curve.loc[0.25, "net_benefit"] == pytest.approx(0.6 - 0.2 / 3)
    # treat all: prevalence 0.6 - 0.4 x odds
    assert curve["treat_all"].tolist() == pytest.approx([0.6 - 0.4 / 3, 0.2])
    assert (curve["treat_none"] == 0).all() and curve.loc[0.25, ["tp", "fp"]].tolist() == [3, 1]


def test_perfect_model_gains_the_prevalence_and_treat_all_is_a_model_calling_everyone():
    y = np.array([0, 1, 1, 0, 0, 1, 0, 0])
    perfect = decision_curve(y, y.astype(float))
    assert np.allclose(perfect["net_benefit"], y.mean()), "a perfect model's net benefit is the prevalence"
    everyone = decision_curve(y, np.ones(y.size))
    assert np.allclose(everyone["net_benefit"], everyone["treat_all"])
    assert perfect["threshold"].tolist() == pytest.approx(DEFAULT_THRESHOLDS.tolist())
    assert DEFAULT_THRESHOLDS[0] == 0.01 and DEFAULT_THRESHOLDS[-1] == 0.99 and DEFAULT_THRESHOLDS.size == 99


@pytest.mark.parametrize("thresholds", [[0.0, 0.5], [0.5, 1.0], []])
def test_thresholds_must_lie_strictly_between_zero_and_one(thresholds):
    with pytest.raises(ValueError, match="threshold"):
        decision_curve([0, 1], [0.2, 0.8], thresholds)
