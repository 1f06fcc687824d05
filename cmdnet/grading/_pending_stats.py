"""PENDING MERGE -- delete this file (and the fallback import in `cmdnet/grading/evaluate.py`) at the merge.

Minimal private stand-ins, with the same contracts, for `cmdnet.stats.paired.corrected_resampled_t` and
`cmdnet.stats.multiplicity.holm`, which are written on the `stats` branch. Used only while that branch is
not merged, so that the grading evaluation and its tests run on this branch.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import t as t_dist


def corrected_resampled_t(differences, n_train, n_test, *, alpha: float = 0.05) -> dict:
    """Nadeau & Bengio (2003) corrected resampled t-test on per-test-fold differences d_j (A - B), J folds:
    se = sqrt((1/J + mean(n_test/n_train)) * var(d, ddof=1)), t = mean(d)/se, df = J - 1, two-sided p."""
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"need at least 2 finite per-fold differences, got {d.tolist()}")
    j = d.size
    rho = float(np.mean(np.broadcast_to(np.asarray(n_test, float), (j,)) /
                        np.broadcast_to(np.asarray(n_train, float), (j,))))
    mean = float(d.mean())
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):
        se = 0.0
        t, p = (0.0, 1.0) if d[0] == 0 else (float(np.sign(d[0]) * np.inf), 0.0)
    else:
        se = float(np.sqrt((1.0 / j + rho) * d.var(ddof=1)))
        t = mean / se
        p = float(2.0 * t_dist.sf(abs(t), j - 1))
    half = float(t_dist.ppf(1.0 - alpha / 2.0, j - 1)) * se
    return {"t": float(t), "p": p, "df": j - 1, "mean_diff": mean, "se": se, "ci_low": mean - half,
            "ci_high": mean + half, "n_folds": j}


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values in input order; NaN entries stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    out[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    return out
