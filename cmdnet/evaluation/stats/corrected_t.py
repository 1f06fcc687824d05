"""Corrected resampled t-test (Nadeau & Bengio 2003) for methods compared over the same CV test folds.

`corrected_resampled_t` holds the statistic; `corrected_t_over_folds` feeds it from the tables' per-fold
metric frames and `corrected_t_from_csv` from a user's own per-fold results (`cmdnet stats corrected-t`).
`paired.py` re-exports all three with the other paired tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist

from cmdnet.errors import InputError


def corrected_resampled_t(differences, n_train, n_test, *, alpha: float = 0.05) -> dict:
    """Corrected resampled t-test of Nadeau & Bengio (2003) on per-test-fold differences A - B.

    The folds of (repeated) k-fold cross-validation share most of their training patients, so the
    per-fold differences are positively correlated and the naive paired t-test over folds is
    anti-conservative (Dietterich 1998). Nadeau & Bengio replace the variance factor 1/J of the naive test
    by (1/J + n_test/n_train); Bouckaert & Frank (2004) apply it to r times repeated k-fold CV with
    J = r * k. With d_j the difference of test fold j (j = 1..J, every (repeat, fold) once):

        mean_diff = (1/J) sum_j d_j
        s^2       = 1/(J - 1) sum_j (d_j - mean_diff)^2            (sample variance, ddof = 1)
        rho       = mean_j(n_test_j / n_train_j)
        se        = sqrt((1/J + rho) s^2)
        t         = mean_diff / se,   df = J - 1,   p = 2 P(T_df > |t|)   (two-sided)
        CI        = mean_diff +- t_{df, 1 - alpha/2} se

    With rho = 0 this is the naive paired t-test (`scipy.stats.ttest_rel`); R = 1 (one k-fold partition)
    is the case J = k. As in `paired_t_over_folds`, identical differences in every fold (s = 0) give
    t = 0, p = 1 when they are 0, and t = +-inf, p = 0 otherwise (se = 0, CI = [mean_diff, mean_diff]).

    `differences`: `(J,)` finite values, one per test fold. `n_train`, `n_test`: training / test set
    sizes, scalars or `(J,)` arrays (n_train > 0; n_test >= 0, where n_test = 0 gives the naive test). Returns `t`, `p`, `df`, `mean_diff`, `se`, `ci_low`,
    `ci_high`, `n_folds` (= J), `test_train_ratio` (= rho), `confidence_level`.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1:
        raise ValueError(f"differences must be a 1-D array (one value per test fold); got shape {d.shape}")
    if d.size < 2:
        raise ValueError(f"the corrected resampled t-test needs at least 2 test folds; got {d.size}")
    if not np.all(np.isfinite(d)):
        raise ValueError("differences contain NaN or infinite values")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    rho = _test_train_ratio(n_train, n_test, d.size)
    n_folds = d.size
    mean_diff = float(d.mean())
    factor = 1.0 / n_folds + rho
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):  # constant up to float rounding: zero variance
        se = 0.0
        t, p = (0.0, 1.0) if d[0] == 0 else (float(np.sign(d[0]) * np.inf), 0.0)
    else:
        se = float(np.sqrt(factor * d.var(ddof=1)))
        t = mean_diff / se
        p = float(2.0 * t_dist.sf(abs(t), n_folds - 1))
    half = float(t_dist.ppf(1.0 - alpha / 2.0, n_folds - 1)) * se
    return {"t": float(t), "p": p, "df": int(n_folds - 1), "mean_diff": mean_diff, "se": se,
            "ci_low": mean_diff - half, "ci_high": mean_diff + half, "n_folds": int(n_folds),
            "test_train_ratio": rho, "confidence_level": 1.0 - alpha}


def _test_train_ratio(n_train, n_test, n_folds: int) -> float:
    """mean(n_test / n_train) over the folds; scalars are broadcast. ValueError naming the problem."""
    sizes = {}
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        arr = np.asarray(value, dtype=float)
        if arr.ndim > 1 or (arr.ndim == 1 and arr.size != n_folds):
            raise ValueError(f"{name} must be a scalar or one value per test fold ({n_folds}); "
                             f"got shape {arr.shape}")
        smallest_ok = arr > 0 if name == "n_train" else arr >= 0  # n_test = 0: the naive test's limit
        if not np.all(np.isfinite(arr)) or not np.all(smallest_ok):
            raise ValueError(f"{name} must be {'positive' if name == 'n_train' else 'non-negative'} set sizes; "
                             f"got {np.atleast_1d(arr)[:5].tolist()}")
        sizes[name] = np.broadcast_to(arr, (n_folds,))
    return float(np.mean(sizes["n_test"] / sizes["n_train"]))


def fold_keys(per_fold: pd.DataFrame) -> list[str]:
    """The columns that name a test fold: `repeat, fold` when a `repeat` column exists, else `fold`."""
    return ["repeat", "fold"] if "repeat" in per_fold.columns else ["fold"]


def corrected_t_over_folds(per_fold_a: pd.DataFrame, per_fold_b: pd.DataFrame, metric: str, *,
                           alpha: float = 0.05) -> dict:
    """`corrected_resampled_t` of `metric` (A - B) from two per-fold frames of the same CV partitions.

    `per_fold_a`, `per_fold_b`: one row per test fold with `fold` (and `repeat` for repeated CV), `n`
    (test patients) and the metric column, as `metrics.per_fold_metrics` returns them. Folds are
    matched on (repeat, fold); both frames must hold the same folds with the same `n`. Every patient is
    in exactly one test fold per repeat, so n_train of a fold = (patients of its repeat) - n_test: the
    whole outer training set, inner validation patients included (they shape the trained model too).
    """
    keys = fold_keys(per_fold_a)
    for name, frame in (("A", per_fold_a), ("B", per_fold_b)):
        missing = [c for c in [*keys, "n", metric] if c not in frame.columns]
        if missing:
            raise ValueError(f"per-fold frame {name} lacks columns {missing}; it has {list(frame.columns)}")
        if frame.duplicated(keys).any():
            raise ValueError(f"per-fold frame {name} lists a test fold ({', '.join(keys)}) twice")
    merged = per_fold_a[[*keys, "n", metric]].merge(per_fold_b[[*keys, "n", metric]], on=keys, how="outer",
                                                    suffixes=("_a", "_b"), indicator=True)
    if (merged["_merge"] != "both").any():
        odd = merged.loc[merged["_merge"] != "both", keys].to_dict("records")[:5]
        raise ValueError(f"A and B were evaluated on different test folds (unmatched: {odd})")
    if (merged["n_a"] != merged["n_b"]).any():
        raise ValueError("A and B have different test-set sizes on the same fold: not the same partition")
    merged = merged.sort_values(keys)
    n_test = merged["n_a"].to_numpy(dtype=float)
    total = merged.groupby(keys[:-1])["n_a"].transform("sum") if len(keys) == 2 else merged["n_a"].sum()
    n_train = np.asarray(total, dtype=float) - n_test
    diffs = merged[f"{metric}_a"].to_numpy(dtype=float) - merged[f"{metric}_b"].to_numpy(dtype=float)
    out = corrected_resampled_t(diffs, n_train, n_test, alpha=alpha)
    out["n_repeats"] = int(merged["repeat"].nunique()) if "repeat" in keys else 1
    return out


def corrected_t_from_csv(csv_path: str | Path, *, score_a: str, score_b: str, fold: str = "fold",
                         repeat: str | None = None, n_train: str = "n_train", n_test: str = "n_test",
                         test_fraction: float | None = None, alpha: float = 0.05) -> dict:
    """Corrected resampled t-test of a user's own per-fold results; a JSON-serialisable dict.

    Used by `cmdnet stats corrected-t`. The CSV has one row per test fold: the `fold` column, the
    `repeat` column when the cross-validation was repeated (used automatically when a column named
    `repeat` exists; a `repeat` name given explicitly must exist), the metric of method A (`score_a`)
    and of method B (`score_b`), and either the columns `n_train`, `n_test` (training and test set
    sizes of the fold) or, instead of them, `test_fraction` = n_test / (n_train + n_test) for every
    fold (1/k for k-fold CV), so n_test / n_train = f / (1 - f). (repeat, fold) must be unique.
    Returns the `corrected_resampled_t` dict (difference A - B) plus `n_repeats`, the column names and
    `method`.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise InputError("CSV file not found", path=path)
    frame = pd.read_csv(path)
    if len(frame) == 0:
        raise InputError("the CSV has no rows", path=path)
    if repeat is None and "repeat" in frame.columns:
        repeat = "repeat"
    keys = [fold] if repeat is None else [repeat, fold]
    sizes = [] if test_fraction is not None else [n_train, n_test]
    missing = [c for c in [*keys, score_a, score_b, *sizes] if c not in frame.columns]
    if missing:
        hint = (" (give the test fraction instead of n_train/n_test columns)"
                if set(missing) & {n_train, n_test} and test_fraction is None else "")
        raise InputError(f"missing column(s) {missing}{hint}; the CSV has {list(frame.columns)}", path=path)
    for key in keys:
        if frame[key].isna().any():
            rows = (np.flatnonzero(frame[key].isna().to_numpy()) + 2)[:5].tolist()
            raise InputError(f"column {key!r} has empty values (CSV lines {rows})", path=path)
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        rows = (np.flatnonzero(dup.to_numpy()) + 2)[:5].tolist()
        raise InputError(f"the same test fold ({', '.join(keys)}) appears more than once (CSV lines {rows}); "
                         "give one row per test fold", path=path)
    a = _numeric_column(frame, score_a, path)
    b = _numeric_column(frame, score_b, path)
    if test_fraction is not None:
        if not 0.0 < test_fraction < 1.0:
            raise InputError(f"test fraction must be in (0, 1); got {test_fraction}", path=path)
        train_sizes, test_sizes = 1.0 - test_fraction, test_fraction
    else:
        train_sizes, test_sizes = _numeric_column(frame, n_train, path), _numeric_column(frame, n_test, path)
        for name, values in ((n_train, train_sizes), (n_test, test_sizes)):
            if np.any(values <= 0):
                rows = (np.flatnonzero(values <= 0) + 2)[:5].tolist()
                raise InputError(f"column {name!r} must hold positive set sizes (CSV lines {rows})", path=path)
    try:
        out = corrected_resampled_t(a - b, train_sizes, test_sizes, alpha=alpha)
    except ValueError as exc:
        raise InputError(str(exc), path=path) from exc
    out.update({"n_repeats": int(frame[repeat].nunique()) if repeat is not None else 1,
                "score_a": score_a, "score_b": score_b, "fold": fold, "repeat": repeat,
                "method": "corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004), "
                          "two-sided, on the per-fold differences A - B"})
    return out


def _numeric_column(frame: pd.DataFrame, name: str, path: Path) -> np.ndarray:
    """Finite float values of column `name`; InputError naming the column and CSV lines otherwise."""
    raw = frame[name]
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = numeric.isna() | ~np.isfinite(numeric.fillna(0.0))
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy()) + 2)[:5].tolist()
        examples = raw[bad].astype(str).head(3).tolist()
        raise InputError(f"column {name!r} has empty, non-numeric or infinite values {examples} "
                         f"(CSV lines {rows})", path=path)
    return numeric.to_numpy(dtype=float)
