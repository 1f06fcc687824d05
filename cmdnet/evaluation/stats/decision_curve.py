"""Decision-curve analysis (Vickers & Elkin 2006, Med Decis Making 26:565).

A threshold probability pt expresses how a clinician weighs a missed event against an unnecessary
intervention (odds pt / (1 - pt) of harm to benefit). Treating the n patients whose predicted event
probability p >= pt gives

    net_benefit(pt) = TP / n - FP / n * pt / (1 - pt)
    treat_all(pt)   = prevalence - (1 - prevalence) * pt / (1 - pt)       (everyone treated)
    treat_none(pt)  = 0                                                    (no one treated)

A model is useful at pt where its net benefit exceeds both references. The `>=` rule matches
Vickers' `dca` and the `dcurves` package.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cmdnet.evaluation.stats.calibration import check_binary_probs

DEFAULT_THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)  # 0.01, 0.02, ..., 0.99


def check_thresholds(thresholds) -> np.ndarray:
    """Validated 1-D threshold probabilities strictly between 0 and 1."""
    pt = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if pt.ndim != 1 or pt.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D array; got shape {pt.shape}")
    if not np.all((pt > 0) & (pt < 1)):
        raise ValueError(f"threshold probabilities must lie strictly between 0 and 1; got "
                         f"{pt[~((pt > 0) & (pt < 1))][:5].tolist()}")
    return pt


def decision_curve(labels, probs, thresholds=DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Net benefit of the model, of treat-all and of treat-none at each threshold probability.

    `labels (n,)` 0/1 (1 = event), `probs (n,)` predicted P(event), `thresholds (T,)` in (0, 1).
    Returns one row per threshold: `threshold`, `net_benefit`, `treat_all`, `treat_none`, `tp`, `fp`, `n`.
    """
    y, p = check_binary_probs(labels, probs)
    pt = check_thresholds(thresholds)
    treated = p[None, :] >= pt[:, None]  # (T, n)
    tp = (treated & (y[None, :] == 1)).sum(axis=1)
    fp = (treated & (y[None, :] == 0)).sum(axis=1)
    n = y.size
    odds = pt / (1.0 - pt)
    prevalence = y.mean()
    return pd.DataFrame({"threshold": pt, "net_benefit": tp / n - fp / n * odds,
                         "treat_all": prevalence - (1.0 - prevalence) * odds, "treat_none": 0.0,
                         "tp": tp, "fp": fp, "n": n})
