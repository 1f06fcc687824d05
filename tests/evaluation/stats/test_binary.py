"""Binary endpoint (M0 vs M1 + M2): event probability, validation-chosen thresholds, pooled per-repeat metrics."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cmdnet.evaluation.stats.binary import (binary_endpoint_by_repeat, event_labels, event_probability, fold_thresholds,
                                 pooled_auc_by_repeat, sensitivity_specificity, summarise_over_repeats,
                                 youden_threshold)
from cmdnet.evaluation.stats.delong import delong_ci


def test_event_probability_is_p_m1_plus_p_m2():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0]])
    assert event_probability(probs) == pytest.approx([0.5, 0.9, 0.0])
    assert event_labels([0, 1, 2], 3).tolist() == [0, 1, 1]
    assert event_probability(probs, positive_classes=[2]) == pytest.approx([0.2, 0.8, 0.0])
    with pytest.raises(ValueError, match="proper subset"):
        event_probability(probs, positive_classes=[0, 1, 2])


def test_youden_threshold_hand_example():
    # distinct scores 0.1 .3 .35 .4 .8 .9 -> candidates 0.1, 0.2, 0.325, 0.375, 0.6, 0.85 with
    # (sens, spec) = (1, 0), (1, 1/3), (2/3, 1/3), (2/3, 2/3), (2/3, 1), (1/3, 1) -> J max 2/3 at 0.6
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.3, 0.9]
    threshold, j = youden_threshold(y, s)
    assert threshold == pytest.approx(0.6) and j == pytest.approx(2 / 3)
    assert sensitivity_specificity(y, s, threshold) == pytest.approx((2 / 3, 1.0))


def test_youden_ties_go_to_the_lowest_threshold():
    # candidates 0.1, 0.15, 0.25, 0.35 -> J = 0, 1/2, 0, 1/2: the tie is resolved to 0.15 (more sensitive)
    assert youden_threshold([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx((0.15, 0.5))
    assert youden_threshold([0, 1], [0.4, 0.4]) == pytest.approx((0.4, 0.0)), "constant scores: call all positive"


def _predictions(rng, n, shift=0.0, repeats=2, folds=3):
    """Out-of-fold-style 3-class predictions: every patient once per repeat, folds assigned per repeat."""
    labels = np.tile([0, 0, 1, 2], n // 4 + 1)[:n]
    frames = []
    for repeat in range(repeats):
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), labels] += 1.2
        probs = np.exp(logits + shift) / np.exp(logits + shift).sum(axis=1, keepdims=True)
        frames.append(pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "repeat": repeat,
                                    "fold": rng.permutation(np.arange(n) % folds), "label": labels,
                                    "prob_0": probs[:, 0], "prob_1": probs[:, 1], "prob_2": probs[:, 2]}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def oof():
    rng = np.random.default_rng(11)
    test = _predictions(rng, 120)
    validation = _predictions(rng, 60)  # inner-validation patients of each (repeat, fold) model
    return test, validation


def test_per_repeat_metrics_pool_each_repeat_and_use_each_folds_own_threshold(oof):
    test, validation = oof
    table = binary_endpoint_by_repeat(test, validation)
    assert table["repeat"].tolist() == [0, 1] and (table["n"] == 120).all()
    thresholds = fold_thresholds(validation)
    for repeat in (0, 1):
        rows = test[test.repeat == repeat].merge(thresholds, on=["repeat", "fold"])
        y = (rows.label > 0).to_numpy().astype(int)
        p = (rows.prob_1 + rows.prob_2).to_numpy()
        called = p >= rows.threshold.to_numpy()
        got = table.set_index("repeat").loc[repeat]
        assert got["auc"] == pytest.approx(roc_auc_score(y, p))
        assert (got["auc_ci_low"], got["auc_ci_high"]) == pytest.approx(delong_ci(y, p)[1:])
        assert got["sensitivity"] == pytest.approx(called[y == 1].mean())
        assert got["specificity"] == pytest.approx((~called[y == 0]).mean())
        assert got["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_threshold_comes_from_validation_predictions_not_the_test_fold(oof):
    test, validation = oof
    base = binary_endpoint_by_repeat(test, validation)
    cols = ["prob_0", "prob_1", "prob_2"]
    raised = validation.copy()  # the validation models now give MVI more weight: lower-risk patients called
    raised["prob_0"] *= 0.5
    raised[cols] = raised[cols].div(raised[cols].sum(axis=1), axis=0)
    moved = binary_endpoint_by_repeat(test, raised)
    assert not np.allclose(moved["sensitivity"], base["sensitivity"]), \
        "sensitivity must depend on the validation predictions (they set the threshold)"
    assert np.allclose(moved["auc"], base["auc"]), "the AUC must not depend on the threshold"
    optimistic = binary_endpoint_by_repeat(test, test)  # what choosing the threshold on the test fold would give
    assert not np.allclose(optimistic["sensitivity"], base["sensitivity"])


def test_missing_validation_fold_and_duplicate_patients_are_refused(oof):
    test, validation = oof
    with pytest.raises(ValueError, match="no validation predictions"):
        binary_endpoint_by_repeat(test, validation[~((validation.repeat == 1) & (validation.fold == 2))])
    with pytest.raises(ValueError, match="more than one out-of-fold prediction"):
        binary_endpoint_by_repeat(pd.concat([test, test.iloc[:1]]), validation)
    with pytest.raises(ValueError, match="both have, or both lack"):
        binary_endpoint_by_repeat(test.drop(columns="repeat"), validation)


def test_pooled_auc_by_repeat_for_two_class_grading_predictions(oof):
    test, _ = oof
    grade = test.assign(label=(test.label > 0).astype(int), prob_1=test.prob_1 + test.prob_2).drop(
        columns="prob_2")
    grade["prob_0"] = 1.0 - grade["prob_1"]
    per_repeat = pooled_auc_by_repeat(grade)
    for repeat, group in grade.groupby("repeat"):
        auc, lo, hi = delong_ci(group.label.to_numpy(), group.prob_1.to_numpy())
        row = per_repeat.set_index("repeat").loc[repeat]
        assert (row["auc"], row["ci_low"], row["ci_high"]) == pytest.approx((auc, lo, hi))
    summary = summarise_over_repeats(per_repeat, ["auc", "ci_low", "ci_high"])
    assert summary["auc"]["mean"] == pytest.approx(per_repeat.auc.mean())
    assert summary["auc"]["sd"] == pytest.approx(per_repeat.auc.std(ddof=1)) and summary["auc"]["n_repeats"] == 2
    single = summarise_over_repeats(per_repeat.iloc[:1], ["auc"])
    assert np.isnan(single["auc"]["sd"]), "one repeat has no SD across repeats"


def test_binary_metrics_are_deterministic(oof):
    test, validation = oof
    pd.testing.assert_frame_equal(binary_endpoint_by_repeat(test, validation),
                                  binary_endpoint_by_repeat(test, validation))
