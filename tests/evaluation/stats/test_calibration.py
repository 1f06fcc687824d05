"""Calibration intercept/slope against an independent Newton-Raphson fit, and the quantile-binned curve."""

import numpy as np
import pytest
from scipy.special import expit, logit

from cmdnet.evaluation.stats.calibration import (calibration_curve_quantile, calibration_intercept, calibration_slope,
                                      linear_predictor)


def _newton_logistic(y, x, offset=None, slope=True, iterations=50):
    """Reference MLE of logit P(y=1) = c + b x (+ offset) by Newton-Raphson, written out for the test."""
    offset = np.zeros_like(x) if offset is None else offset
    design = np.column_stack([np.ones_like(x), x]) if slope else np.ones((x.size, 1))
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        mu = expit(design @ beta + offset)
        gradient = design.T @ (y - mu)
        hessian = design.T @ (design * (mu * (1 - mu))[:, None])
        beta = beta + np.linalg.solve(hessian, gradient)
    return beta


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(7)
    p = rng.uniform(0.05, 0.95, 400)
    y = rng.binomial(1, expit(0.4 + 0.7 * logit(p)))  # miscalibrated on purpose: intercept, slope != 0, 1
    return y, p


def test_slope_and_intercept_equal_reference_maximum_likelihood(cohort):
    y, p = cohort
    lp = logit(p)
    c, b = _newton_logistic(y, lp)
    (a,) = _newton_logistic(y, np.zeros_like(lp), offset=lp, slope=False)
    assert calibration_slope(y, p) == pytest.approx(b, rel=1e-6)
    assert calibration_intercept(y, p) == pytest.approx(a, abs=1e-9)
    assert b < 1, "the simulated predictions are too extreme, so the slope must be below 1"


def test_recalibrated_predictions_have_intercept_zero_and_slope_one(cohort):
    y, p = cohort
    c, b = _newton_logistic(y, logit(p))
    recalibrated = expit(c + b * logit(p))  # the MLE is its own perfect recalibration on the same data
    assert calibration_slope(y, recalibrated) == pytest.approx(1.0, rel=1e-6)
    assert calibration_intercept(y, recalibrated) == pytest.approx(0.0, abs=1e-6)


def test_overconfident_predictions_halve_the_slope_and_shifts_move_the_intercept(cohort):
    y, p = cohort
    doubled = expit(2 * logit(p))  # lp x 2 -> the fitted slope halves exactly
    assert calibration_slope(y, doubled) == pytest.approx(calibration_slope(y, p) / 2, rel=1e-6)
    shifted = expit(logit(p) + 0.7)  # predictions too high by 0.7 on the logit scale
    assert calibration_intercept(y, shifted) == pytest.approx(calibration_intercept(y, p) - 0.7, abs=1e-9)


def test_probabilities_of_exactly_zero_and_one_are_clipped_not_fatal():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.0, 0.2, 1.0, 0.6, 0.7, 0.3])
    assert linear_predictor([0.0, 1.0]) == pytest.approx([logit(1e-6), logit(1 - 1e-6)])
    assert np.isfinite(calibration_intercept(y, p)) and np.isfinite(calibration_slope(y, p))


def test_separating_predictions_give_infinite_slope_and_constant_ones_nan():
    y = np.array([0, 0, 1, 1])
    assert calibration_slope(y, [0.1, 0.2, 0.3, 0.4]) == np.inf
    assert np.isnan(calibration_slope(y, [0.3] * 4))
    assert calibration_intercept(y, [0.5] * 4) == pytest.approx(0.0, abs=1e-12)  # 50% events, predicted 0.5


@pytest.mark.parametrize("labels,probs,message", [
    ([0, 1], [0.2, 1.2], r"\[0, 1\]"), ([0, 2], [0.2, 0.3], "0/1"), ([1, 1], [0.2, 0.3], "only class 1"),
    ([0, 1], [0.2], "shape"),
])
def test_calibration_rejects_bad_input(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        calibration_intercept(labels, probs)


def test_quantile_bins_have_equal_counts_and_wilson_intervals(cohort):
    y, p = cohort
    curve = calibration_curve_quantile(y, p, n_bins=8)
    assert curve["count"].tolist() == [50] * 8, "quantile bins of 400 distinct predictions must hold 50 each"
    assert curve["mean_predicted"].is_monotonic_increasing
    assert (curve["p_max"].to_numpy()[:-1] < curve["p_min"].to_numpy()[1:]).all(), "bins must not overlap"
    row = curve.iloc[3]
    k, n, z = row["n_events"], row["count"], 1.959963984540054
    centre = (k + z**2 / 2) / (n + z**2)  # Wilson score interval, written out
    half = z / (n + z**2) * np.sqrt(k * (n - k) / n + z**2 / 4)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((centre - half, centre + half), rel=1e-9)
    assert row["observed"] == pytest.approx(k / n)


def test_tied_predictions_stay_in_one_bin():
    p = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 0, 0, 1, 1, 0, 1])
    curve = calibration_curve_quantile(y, p, n_bins=5)
    assert curve.loc[0, "count"] == 6 and curve.loc[0, "p_min"] == curve.loc[0, "p_max"] == 0.1
    assert curve["count"].sum() == 10 and curve["bin"].tolist() == list(range(len(curve)))
    single = calibration_curve_quantile([0, 1, 1], [0.4, 0.4, 0.4], n_bins=10)
    assert single["count"].tolist() == [3]
