"""Metric values on hand-made cases; the macro AUC is Hand & Till's one-vs-one, not one-vs-rest."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cmdnet.evaluation.stats.metrics import binary_metrics, mvi_metrics, per_fold_metrics, summarise


def _mann_whitney_auc(pos, neg):
    """Brute force: P(pos > neg) + 0.5 P(pos == neg)."""
    return np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg])


def _hand_till(labels, probs):
    """Hand & Till (2001) M = 2/(C(C-1)) sum_{i<j} (A(i|j) + A(j|i)) / 2, by explicit loops."""
    total, pairs = 0.0, list(combinations(range(probs.shape[1]), 2))
    for i, j in pairs:
        a_ij = _mann_whitney_auc(probs[labels == i, i], probs[labels == j, i])
        a_ji = _mann_whitney_auc(probs[labels == j, j], probs[labels == i, j])
        total += (a_ij + a_ji) / 2
    return total / len(pairs)


# 3 classes, unbalanced (4, 2, 6 samples) with overlapping scores: OvO and OvR differ here.
LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
PROBS = np.array([
    [0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.3, 0.5, 0.2], [0.4, 0.1, 0.5],
    [0.2, 0.6, 0.2], [0.5, 0.4, 0.1],
    [0.1, 0.3, 0.6], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2], [0.2, 0.2, 0.6],
])


def test_macro_auc_is_hand_and_till_one_vs_one():
    m = mvi_metrics(LABELS, PROBS)
    assert m["auc_macro_ovo"] == pytest.approx(_hand_till(LABELS, PROBS), abs=1e-12)


def test_macro_auc_is_not_one_vs_rest_on_an_asymmetric_case():
    ovr = roc_auc_score(np.eye(3)[LABELS], PROBS, average="macro")  # the one-hot pitfall
    m = mvi_metrics(LABELS, PROBS)
    assert abs(m["auc_macro_ovo"] - ovr) > 1e-3, "macro AUC silently became one-vs-rest"


def test_f1_accuracy_sensitivity_specificity_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])  # argmax of the probabilities below
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), pred] = 0.8
    m = mvi_metrics(labels, probs)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: TP 1, FN 1, FP 1 -> F1 0.5; class 1: TP 2, FP 1 -> F1 0.8; class 2: TP 1, FN 1 -> F1 2/3
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["sensitivity_0"] == pytest.approx(0.5) and m["specificity_0"] == pytest.approx(3 / 4)
    assert m["sensitivity_1"] == pytest.approx(1.0) and m["specificity_1"] == pytest.approx(3 / 4)
    assert m["sensitivity_2"] == pytest.approx(0.5) and m["specificity_2"] == pytest.approx(1.0)


def test_missing_class_is_an_error_not_a_sentinel():
    with pytest.raises(ValueError, match="absent"):
        mvi_metrics(np.array([0, 1, 0, 1]), np.full((4, 3), 1 / 3))


def test_binary_metrics_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    prob = np.array([0.9, 0.6, 0.4, 0.5, 0.2, 0.1, 0.6])
    m = binary_metrics(labels, prob)  # predictions 1 1 0 1 0 0 1
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(2 / 4)
    assert m["auc"] == pytest.approx(_mann_whitney_auc(prob[labels == 1], prob[labels == 0]))
    assert binary_metrics(labels, np.c_[1 - prob, prob]) == m  # (n, 2) probabilities use column 1
    assert binary_metrics(labels, prob, threshold=0.95)["sensitivity"] == 0.0


def test_per_fold_metrics_and_summary_use_sample_sd():
    rng = np.random.default_rng(1)
    frames = []
    for fold in range(3):
        probs = rng.dirichlet([1, 1, 1], size=12)
        frames.append(pd.DataFrame({"patient_id": [f"P{fold}{i}" for i in range(12)], "fold": fold,
                                    "label": np.tile([0, 1, 2], 4),
                                    **{f"prob_{c}": probs[:, c] for c in range(3)}}))
    pred = pd.concat(frames, ignore_index=True)
    per_fold = per_fold_metrics(pred, mvi_metrics)
    assert list(per_fold["fold"]) == [0, 1, 2] and list(per_fold["n"]) == [12, 12, 12]
    f0 = pred[pred.fold == 0]
    assert per_fold.loc[0, "accuracy"] == pytest.approx(mvi_metrics(f0.label.to_numpy(),
                                                                    f0[["prob_0", "prob_1", "prob_2"]].to_numpy())["accuracy"])
    mean, sd = summarise(per_fold, ["accuracy"])["accuracy"]
    assert mean == pytest.approx(per_fold["accuracy"].mean())
    assert sd == pytest.approx(np.std(per_fold["accuracy"], ddof=1))


def test_per_fold_metrics_names_the_failing_fold():
    pred = pd.DataFrame({"fold": [0, 0, 1, 1], "label": [0, 1, 0, 0], "prob_0": [0.6, 0.3, 0.7, 0.4],
                         "prob_1": [0.4, 0.7, 0.3, 0.6]})
    with pytest.raises(ValueError, match="fold=1"):
        per_fold_metrics(pred, binary_metrics)
