"""Multiplicity control across the comparisons of one table.

Holm's step-down procedure (Holm 1979, Scand. J. Statist. 6:65-70) controls the family-wise error rate at
alpha for any dependence between the tests, and is uniformly more powerful than Bonferroni. Adjusted
p-values (Wright 1992, Biometrics 48:1005), with p_(1) <= ... <= p_(m) the m raw p-values sorted:

    p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))

Reject hypothesis i at level alpha iff p~_i <= alpha. Same numbers as R's `p.adjust(p, "holm")` and
statsmodels' `multipletests(p, method="holm")`.
"""

from __future__ import annotations

import numpy as np


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values `(m,)`, in the input order.

    `p_values`: `(m,)` raw p-values in [0, 1]. NaN entries (a comparison that could not be made) stay NaN
    and do not count as tests: m is the number of non-NaN entries. Ties keep a stable order, which does
    not change the adjusted values (tied raw p-values get equal adjusted p-values).
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be a 1-D array; got shape {p.shape}")
    tested = ~np.isnan(p)
    outside = tested & ((p < 0) | (p > 1))
    if outside.any():
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN); got {p[outside].tolist()}")
    out = np.full(p.shape, np.nan)
    raw = p[tested]
    m = raw.size
    if m == 0:
        return out
    order = np.argsort(raw, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * raw[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    out[tested] = adjusted
    return out
