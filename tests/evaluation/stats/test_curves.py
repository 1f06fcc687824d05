"""Figure data for several methods: decision curves averaged over repeats, calibration curves per repeat."""

import numpy as np
import pandas as pd
import pytest

from cmdnet.evaluation.stats.curves import TREAT_ALL, TREAT_NONE, calibration_curves, decision_curves
from cmdnet.evaluation.stats.decision_curve import decision_curve


def _method(seed, repeats=2, n=40):
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1, 2, 0], n // 4)
    frames = []
    for repeat in range(repeats):
        probs = rng.dirichlet([1, 1, 1], n)
        frames.append(pd.DataFrame({"repeat": repeat, "fold": np.arange(n) % 4, "label": labels,
                                    "prob_0": probs[:, 0], "prob_1": probs[:, 1], "prob_2": probs[:, 2]}))
    return pd.concat(frames, ignore_index=True)


def test_decision_curves_average_repeats_and_add_both_references():
    preds = {"ours": _method(0), "baseline": _method(1)}
    curves = decision_curves(preds, thresholds=[0.2, 0.5])
    assert curves["method"].unique().tolist() == ["ours", "baseline", TREAT_ALL, TREAT_NONE]
    ours = preds["ours"]
    per_repeat = [decision_curve((g.label > 0).astype(int), g.prob_1 + g.prob_2, [0.2, 0.5])["net_benefit"]
                  for _, g in ours.groupby("repeat")]
    got = curves[curves.method == "ours"]["net_benefit"].to_numpy()
    assert got == pytest.approx(np.mean(per_repeat, axis=0)), "rows must be the mean over repeats"
    prevalence = 0.5  # labels 0, 1, 2, 0: half of the patients have an event
    treat_all = curves[curves.method == TREAT_ALL]["net_benefit"].to_numpy()
    assert treat_all == pytest.approx([prevalence - 0.5 * 0.25, 0.0])
    assert (curves[curves.method == TREAT_NONE]["net_benefit"] == 0).all()


def test_decision_curves_refuse_methods_on_different_patients():
    other = _method(1)
    other.loc[other.index[:3], "label"] = 0
    with pytest.raises(ValueError, match="different event prevalences"):
        decision_curves({"ours": _method(0), "baseline": other})


def test_calibration_curves_are_per_method_and_repeat_never_pooled():
    curves = calibration_curves({"ours": _method(0), "baseline": _method(1)}, n_bins=4)
    assert list(curves.columns[:4]) == ["method", "repeat", "bin", "count"]
    counts = curves.groupby(["method", "repeat"])["count"].sum()
    assert (counts == 40).all(), "each repeat's curve must hold each patient once"
    first = calibration_curves({"ours": _method(0)}, n_bins=4, repeats=[0])
    assert first["repeat"].unique().tolist() == [0]
    with pytest.raises(ValueError, match="no repeat"):
        calibration_curves({"ours": _method(0)}, repeats=[5])
