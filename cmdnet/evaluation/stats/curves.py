"""Numbers behind the decision-curve and calibration figures, for several methods at once.

Input: `predictions[method]` = that method's out-of-fold test predictions (`label`, `prob_*`, `fold`,
optionally `repeat` and `patient_id`), the binary event read as in `binary.py` (default: any class but
0, i.e. M1 or M2 for MVI). Output: long frames with a `method` column, ready to draw; no plotting here.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cmdnet.evaluation.stats.binary import event_labels, event_probability
from cmdnet.evaluation.stats.calibration import calibration_curve_quantile
from cmdnet.evaluation.stats.decision_curve import DEFAULT_THRESHOLDS, decision_curve
from cmdnet.evaluation.stats.metrics import prob_columns

TREAT_ALL = "Treat all"
TREAT_NONE = "Treat none"


def _events_by_repeat(pred: pd.DataFrame, positive_classes: Iterable[int] | None, method: str
                      ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{repeat: (0/1 events, event probabilities)}; repeat 0 when there is no `repeat` column."""
    if "label" not in pred.columns:
        raise ValueError(f"predictions of {method!r} lack the `label` column; columns are {list(pred.columns)}")
    pcols = prob_columns(pred)
    repeats = pred["repeat"] if "repeat" in pred.columns else pd.Series(0, index=pred.index)
    out = {}
    for repeat, group in pred.groupby(repeats, sort=True):
        y = event_labels(group["label"].to_numpy(), len(pcols), positive_classes)
        out[int(repeat)] = (y, event_probability(group[pcols].to_numpy(dtype=float), positive_classes))
    return out


def decision_curves(predictions: Mapping[str, pd.DataFrame], *, thresholds=DEFAULT_THRESHOLDS,
                    positive_classes: Iterable[int] | None = None) -> pd.DataFrame:
    """Net benefit vs threshold probability of every method, plus "Treat all" and "Treat none".

    Returns `method`, `threshold`, `net_benefit`, `n_repeats`: one curve per method (in the mapping's order),
    then `TREAT_ALL` and `TREAT_NONE`. With repeated CV each repeat's pooled predictions (every patient
    once) give a curve and the rows hold the mean over repeats. All methods must describe the same
    patients: their event prevalences must agree (else ValueError).
    """
    if not predictions:
        raise ValueError("no methods given")
    frames, treat_all = [], None
    for method, pred in predictions.items():
        by_repeat = _events_by_repeat(pred, positive_classes, method)
        curves = [decision_curve(y, p, thresholds) for y, p in by_repeat.values()]
        mean = pd.concat(curves).groupby("threshold", sort=True)[["net_benefit", "treat_all"]].mean()
        if treat_all is None:
            treat_all = mean["treat_all"]
        elif not np.allclose(mean["treat_all"].to_numpy(), treat_all.to_numpy(), rtol=0, atol=1e-12):
            first = next(iter(predictions))
            raise ValueError(f"methods {first!r} and {method!r} have different event prevalences: "
                             "not the same patients")
        frames.append(pd.DataFrame({"method": method, "threshold": mean.index.to_numpy(),
                                    "net_benefit": mean["net_benefit"].to_numpy(), "n_repeats": len(curves)}))
    pt = treat_all.index.to_numpy()
    frames.append(pd.DataFrame({"method": TREAT_ALL, "threshold": pt, "net_benefit": treat_all.to_numpy(),
                                "n_repeats": frames[0]["n_repeats"].iloc[0]}))
    frames.append(pd.DataFrame({"method": TREAT_NONE, "threshold": pt, "net_benefit": 0.0,
                                "n_repeats": frames[0]["n_repeats"].iloc[0]}))
    return pd.concat(frames, ignore_index=True)


def calibration_curves(predictions: Mapping[str, pd.DataFrame], *, n_bins: int = 10,
                       positive_classes: Iterable[int] | None = None, repeats: Sequence[int] | None = None,
                       alpha: float = 0.05) -> pd.DataFrame:
    """Quantile-binned calibration curve of every method, per repeat.

    Returns `method`, `repeat` and the columns of `calibration.calibration_curve_quantile` (`bin`,
    `count`, `n_events`, `mean_predicted`, `observed`, `ci_low`, `ci_high`, `p_min`, `p_max`).
    Repeats are not pooled: pooled repeats would count each patient R times and make the Wilson
    intervals too narrow. Draw one repeat (e.g. the first) or each; `repeats` keeps only those listed.
    """
    if not predictions:
        raise ValueError("no methods given")
    frames = []
    for method, pred in predictions.items():
        by_repeat = _events_by_repeat(pred, positive_classes, method)
        chosen = sorted(by_repeat) if repeats is None else list(repeats)
        absent = sorted(set(chosen) - set(by_repeat))
        if absent:
            raise ValueError(f"predictions of {method!r} have no repeat(s) {absent}; "
                             f"they have {sorted(by_repeat)}")
        for repeat in chosen:
            y, p = by_repeat[repeat]
            curve = calibration_curve_quantile(y, p, n_bins, alpha=alpha)
            frames.append(curve.assign(method=method, repeat=repeat))
    out = pd.concat(frames, ignore_index=True)
    return out[["method", "repeat", *[c for c in out.columns if c not in ("method", "repeat")]]]
