"""The MVI evaluation: the declared primary test (corrected t, Holm) over repeated partitions, the conditional
bootstrap, and the alignment of methods' predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cmdnet.evaluation.mvi import P_BOOT, P_HOLM, P_PRIMARY, stacked_probs, table1_statistics
from cmdnet.evaluation.stats.corrected_t import corrected_t_over_folds
from cmdnet.evaluation.stats.metrics import mvi_metrics, per_fold_metrics


def _predictions(strength: float, seed: int, n: int = 60, repeats: int = 2, k: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    rows = []
    for repeat in range(repeats):
        folds = np.random.default_rng(100 + repeat).permutation(np.arange(n) % k)
        logits = rng.normal(size=(n, 3))
        logits[np.arange(n), labels] += strength
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        rows.append(pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "repeat": repeat, "fold": folds,
                                  "label": labels, **{f"prob_{c}": probs[:, c] for c in range(3)}}))
    return pd.concat(rows, ignore_index=True)


def test_table1_primary_test_is_the_corrected_t_holm_adjusted_with_a_conditional_bootstrap_beside_it():
    preds = {"ours": _predictions(2.0, 0), "concat": _predictions(0.3, 1), "lstm": _predictions(1.9, 2)}
    per_fold = {m: per_fold_metrics(p, mvi_metrics, ("repeat", "fold")) for m, p in preds.items()}
    stats = table1_statistics(per_fold, preds, reference="ours", n_boot=200, seed=0).set_index("method")
    assert list(stats.index) == ["concat", "lstm"], "every method but the reference, in table order"
    direct = corrected_t_over_folds(per_fold["concat"], per_fold["ours"], "auc_macro_ovo")
    assert stats.loc["concat", P_PRIMARY] == pytest.approx(direct["p"])
    assert direct["n_folds"] == 6 and direct["df"] == 5, "2 repeats x 3 folds"
    raw, adjusted = stats[P_PRIMARY].to_numpy(), stats[P_HOLM].to_numpy()
    assert np.all(adjusted >= raw) and adjusted.max() <= 1
    assert stats.loc["concat", P_PRIMARY] < 0.05 and stats.loc["lstm", P_PRIMARY] > 0.05
    assert stats.loc["concat", "auc_diff_ci_high"] < 0 < stats.loc["lstm", "auc_diff_ci_high"]
    assert 0 <= stats.loc["concat", P_BOOT] < 0.05


def test_stacked_probabilities_align_patients_across_repeats_and_methods():
    a, b = _predictions(1.0, 0), _predictions(1.0, 1)
    labels, probs = stacked_probs(a.sample(frac=1.0, random_state=0), reference=b)
    assert probs.shape == (2, 60, 3) and list(labels[:3]) == [0, 1, 2]
    moved = b.assign(patient_id=b["patient_id"].str.replace("P000", "Q000"))
    with pytest.raises(ValueError, match="different patients"):
        stacked_probs(a, reference=moved)
