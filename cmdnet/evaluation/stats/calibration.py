"""Calibration of predicted probabilities of a binary outcome: intercept, slope and a binned curve.

Conventions: `labels (n,)` are 0/1 (1 = event), `probs (n,)` predicted P(event). The linear predictor is
lp = logit(clip(p, eps, 1 - eps)) with eps = 1e-6 (|lp| <= 13.8), so predictions of exactly 0 or 1 stay
usable; the clip is part of the definition and changes nothing for 1e-6 <= p <= 1 - 1e-6.

* Calibration intercept ("calibration-in-the-large", Van Calster et al. 2016, J Clin Epidemiol 74:167;
  Steyerberg 2019, Clinical Prediction Models, ch. 15): a in  logit P(y = 1) = a + 1 * lp  (lp as an
  offset), fitted by maximum likelihood. It solves sum_i (y_i - expit(a + lp_i)) = 0, a strictly
  decreasing function of a, so it has exactly one root whenever both classes are present. Target 0;
  a > 0: predictions too low on average.
* Calibration slope (Cox 1958): b in  logit P(y = 1) = c + b lp, an unpenalised logistic regression.
  Target 1; b < 1: predictions too extreme (typical of overfitting), b > 1: too moderate. When lp
  separates the classes (every event's lp >= every non-event's) the maximum-likelihood slope is
  infinite and +inf is returned; constant lp gives NaN (no slope can be fitted).
* Calibration curve with quantile bins: patients are grouped by the quantiles of p (equal counts, ties
  kept in one bin, so tied predictions can merge bins), and each bin gives mean p, observed event
  fraction and the Wilson score 95% interval of that fraction (Wilson 1927; Brown, Cai & DasGupta 2001).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression

CLIP_EPS = 1e-6


def check_binary_probs(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """Validated `labels (n,)` 0/1 int and `probs (n,)` in [0, 1]; ValueError naming the problem."""
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must both have shape (n,)")
    if p.size == 0:
        raise ValueError("no samples")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or infinite values")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"probabilities must lie in [0, 1]; got min {p.min():.6g}, max {p.max():.6g}")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"binary labels must be 0/1 (1 = event); got values {sorted(values, key=str)}")
    return y.astype(int), p


def linear_predictor(probs, eps: float = CLIP_EPS) -> np.ndarray:
    """lp = logit(clip(p, eps, 1 - eps))."""
    return logit(np.clip(np.asarray(probs, dtype=float), eps, 1.0 - eps))


def _require_both_classes(y: np.ndarray, what: str) -> None:
    if y.all() or not y.any():
        raise ValueError(f"{what} needs events and non-events; only class {int(y[0])} is present")


def calibration_intercept(labels, probs) -> float:
    """Calibration-in-the-large a: logit P(y = 1) = a + lp, lp an offset (see module docstring)."""
    y, p = check_binary_probs(labels, probs)
    _require_both_classes(y, "the calibration intercept")
    lp = linear_predictor(p)

    def score(a: float) -> float:
        return float(np.sum(y - expit(a + lp)))

    # score(-span) > 0 > score(span) once span exceeds the lp range by log(n) or so
    span = float(np.ptp(lp) + np.abs(lp).max() + np.log(y.size) + 10.0)
    return float(brentq(score, -span, span, xtol=1e-12, rtol=1e-12, maxiter=500))


def calibration_slope(labels, probs) -> float:
    """Calibration slope b: logit P(y = 1) = c + b lp, unpenalised maximum likelihood (+inf if separable)."""
    y, p = check_binary_probs(labels, probs)
    _require_both_classes(y, "the calibration slope")
    lp = linear_predictor(p)
    if np.ptp(lp) == 0:
        return float("nan")
    if lp[y == 1].min() >= lp[y == 0].max():
        return float("inf")  # (quasi-)complete separation: the likelihood grows without bound in b
    # C = inf: no penalty (scikit-learn >= 1.8 deprecates penalty=None in favour of this spelling)
    model = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-10, max_iter=10_000)
    model.fit(lp[:, None], y)
    return float(model.coef_[0, 0])


def calibration_curve_quantile(labels, probs, n_bins: int = 10, *, alpha: float = 0.05) -> pd.DataFrame:
    """Calibration curve with quantile bins and Wilson intervals of the observed fraction.

    Returns one row per non-empty bin, ordered by predicted probability: `bin` (0, 1, ...), `count`,
    `n_events`, `mean_predicted`, `observed` (= n_events / count), `ci_low`, `ci_high` (Wilson score
    (1 - alpha) interval), `p_min`, `p_max` (range of p in the bin). Fewer than `n_bins` rows when
    tied predictions merge bins or n < n_bins.
    """
    y, p = check_binary_probs(labels, probs)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    # right-closed bins between the distinct quantiles of p (as pandas.qcut): ties never straddle a bin edge
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
    bins = np.searchsorted(edges[1:-1], p, side="left")
    rows = []
    for b, index in enumerate(np.unique(bins)):
        in_bin = bins == index
        count, events = int(in_bin.sum()), int(y[in_bin].sum())
        ci = binomtest(events, count).proportion_ci(confidence_level=1.0 - alpha, method="wilson")
        rows.append({"bin": b, "count": count, "n_events": events, "mean_predicted": float(p[in_bin].mean()),
                     "observed": events / count, "ci_low": float(ci.low), "ci_high": float(ci.high),
                     "p_min": float(p[in_bin].min()), "p_max": float(p[in_bin].max())})
    return pd.DataFrame(rows)
