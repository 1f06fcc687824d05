"""Corrected resampled t-test (Nadeau & Bengio 2003): hand arithmetic, the naive limit, fold frames, CSV input."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cmdnet.errors import InputError
from cmdnet.evaluation.stats.paired import corrected_resampled_t, corrected_t_from_csv, corrected_t_over_folds

# One 5-fold partition (R = 1) of 100 patients: n_train = 80, n_test = 20 in every fold.
FIVE_FOLD_DIFFS = [0.02, 0.03, 0.01, 0.04, 0.00]


def test_corrected_t_matches_hand_computed_example():
    # mean = 0.10 / 5 = 0.02
    # deviations 0, 0.01, -0.01, 0.02, -0.02 -> squares sum to 0.001 -> s^2 = 0.001 / 4 = 2.5e-4
    # correction 1/J + n_test/n_train = 1/5 + 20/80 = 0.45 -> se = sqrt(0.45 * 2.5e-4) = sqrt(1.125e-4)
    #   = 0.0106066017...;  t = 0.02 / 0.0106066017 = 1.8856180...;  df = 4
    # naive t would be 0.02 / sqrt(2.5e-4 / 5) = 2.8284271 = 1.5 x larger (sqrt(0.45 / 0.2) = 1.5)
    # p = 2 P(T_4 > 1.8856) = 0.13242 (t tables: between 0.10 (2.132) and 0.20 (1.533));
    # CI half-width = t_{4, 0.975} se = 2.7764451 x 0.0106066 = 0.0294486
    res = corrected_resampled_t(FIVE_FOLD_DIFFS, n_train=80, n_test=20)
    assert res["mean_diff"] == pytest.approx(0.02, abs=1e-15)
    assert res["se"] == pytest.approx(np.sqrt(1.125e-4), rel=1e-12)
    assert res["t"] == pytest.approx(1.8856180831641267, rel=1e-12)
    assert res["df"] == 4 and res["n_folds"] == 5 and res["test_train_ratio"] == 0.25
    assert res["p"] == pytest.approx(0.1324189, abs=1e-7)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((0.02 - 0.0294486474, 0.02 + 0.0294486474), abs=1e-9)


def test_corrected_t_equals_scipy_paired_t_when_correction_term_is_zero():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.6, 0.8, 10), rng.uniform(0.6, 0.8, 10)
    res = corrected_resampled_t(a - b, n_train=90, n_test=0)
    ref = stats.ttest_rel(a, b)
    assert res["t"] == pytest.approx(ref.statistic, rel=1e-12), "with n_test/n_train = 0 it must be the naive test"
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_single_partition_r1_is_k_folds_and_correction_only_widens():
    naive = corrected_resampled_t(FIVE_FOLD_DIFFS, n_train=80, n_test=0)
    corrected = corrected_resampled_t(FIVE_FOLD_DIFFS, n_train=80, n_test=20)
    assert corrected["df"] == naive["df"] == 4
    assert corrected["t"] == pytest.approx(naive["t"] / 1.5, rel=1e-12)
    assert corrected["p"] > naive["p"], "the correction must make the test more conservative, not less"
    assert corrected["ci_high"] - corrected["ci_low"] == pytest.approx(1.5 * (naive["ci_high"] - naive["ci_low"]))


def test_repeated_cv_uses_all_r_times_k_folds_and_mean_size_ratio():
    d = np.array([0.01, 0.03, 0.02, 0.00, 0.05, 0.01, 0.02, 0.04])  # R = 2 repeats x K = 4 folds
    n_test = np.array([25, 25, 25, 25, 24, 26, 25, 25])
    n_train = 100 - n_test
    res = corrected_resampled_t(d, n_train, n_test)
    rho = np.mean(n_test / n_train)
    assert res["test_train_ratio"] == pytest.approx(rho)
    assert res["df"] == 7 and res["n_folds"] == 8
    assert res["t"] == pytest.approx(d.mean() / np.sqrt((1 / 8 + rho) * d.var(ddof=1)), rel=1e-12)


@pytest.mark.parametrize("diffs,t,p", [([0.0, 0.0, 0.0], 0.0, 1.0), ([0.01, 0.01, 0.01], np.inf, 0.0),
                                       ([-0.02, -0.02], -np.inf, 0.0)])
def test_zero_variance_differences_like_paired_t_over_folds(diffs, t, p):
    res = corrected_resampled_t(diffs, 80, 20)
    assert (res["t"], res["p"], res["se"]) == (t, p, 0.0)
    assert res["ci_low"] == res["ci_high"] == pytest.approx(diffs[0])


@pytest.mark.parametrize("kwargs,message", [
    ({"differences": [0.1]}, "at least 2"),
    ({"differences": [[0.1, 0.2]]}, "1-D"),
    ({"differences": [0.1, np.nan]}, "NaN"),
    ({"n_train": 0}, "n_train must be positive"),
    ({"n_test": -1}, "n_test must be non-negative"),
    ({"n_test": [20, 20]}, r"one value per test fold \(3\)"),
    ({"alpha": 1.5}, "alpha"),
])
def test_corrected_t_rejects_bad_input(kwargs, message):
    args = {"differences": [0.1, 0.2, 0.3], "n_train": 80, "n_test": 20, **kwargs}
    alpha = args.pop("alpha", 0.05)
    with pytest.raises(ValueError, match=message):
        corrected_resampled_t(**args, alpha=alpha)


def _per_fold(values, n=(20, 20, 20, 20, 20), repeats=None):
    frame = pd.DataFrame({"fold": list(range(len(n))) * (repeats or 1), "n": list(n) * (repeats or 1),
                          "auc": values})
    if repeats:
        frame.insert(0, "repeat", np.repeat(range(repeats), len(n)))
    return frame


def test_over_folds_matches_folds_and_derives_training_sizes():
    a = _per_fold([0.70, 0.72, 0.69, 0.75, 0.71, 0.73, 0.70, 0.74, 0.72, 0.70], repeats=2)
    b = _per_fold([0.68, 0.70, 0.70, 0.71, 0.71, 0.70, 0.69, 0.70, 0.70, 0.71], repeats=2)
    shuffled = b.sample(frac=1.0, random_state=0)  # row order must not matter: folds are matched by key
    res = corrected_t_over_folds(a, shuffled, "auc")
    ref = corrected_resampled_t(a["auc"] - b["auc"], n_train=80, n_test=20)
    assert res["t"] == pytest.approx(ref["t"], rel=1e-12) and res["n_repeats"] == 2 and res["n_folds"] == 10


def test_over_folds_refuses_different_partitions():
    a = _per_fold([0.7, 0.7, 0.7, 0.7, 0.7])
    with pytest.raises(ValueError, match="different test folds"):
        corrected_t_over_folds(a, a.iloc[:4], "auc")
    with pytest.raises(ValueError, match="different test-set sizes"):
        corrected_t_over_folds(a, _per_fold([0.7] * 5, n=(21, 19, 20, 20, 20)), "auc")


def test_from_csv_with_repeat_column_and_size_columns(tmp_path):
    frame = pd.DataFrame({"repeat": [0, 0, 1, 1], "fold": [0, 1, 0, 1], "ours": [0.74, 0.70, 0.73, 0.71],
                          "base": [0.70, 0.69, 0.72, 0.70], "n_train": [50, 50, 50, 50], "n_test": [50] * 4})
    path = tmp_path / "folds.csv"
    frame.to_csv(path, index=False)
    res = corrected_t_from_csv(path, score_a="ours", score_b="base")
    ref = corrected_resampled_t(frame.ours - frame.base, 50, 50)
    assert res["t"] == pytest.approx(ref["t"]) and res["n_repeats"] == 2 and res["repeat"] == "repeat"
    json.dumps(res)  # the CLI prints it as JSON
    by_fraction = corrected_t_from_csv(path, score_a="ours", score_b="base", test_fraction=0.5)
    assert by_fraction["t"] == pytest.approx(ref["t"])


@pytest.mark.parametrize("edit,kwargs,message", [
    (None, {"score_a": "nope"}, "missing column"),
    ("drop_sizes", {}, "give the test fraction"),
    ("duplicate", {}, "more than once"),
    ("text", {}, "non-numeric"),
    ("zero_train", {}, "positive set sizes"),
    (None, {"test_fraction": 1.0}, "test fraction"),
])
def test_from_csv_errors_name_file_and_column(tmp_path, edit, kwargs, message):
    frame = pd.DataFrame({"fold": [0, 1, 2], "a": [0.7, 0.8, 0.75], "b": [0.6, 0.7, 0.72],
                          "n_train": [20, 20, 20], "n_test": [10, 10, 10]})
    if edit == "drop_sizes":
        frame = frame.drop(columns=["n_train", "n_test"])
    elif edit == "duplicate":
        frame.loc[2, "fold"] = 1
    elif edit == "text":
        frame["b"] = frame["b"].astype(object)
        frame.loc[1, "b"] = "n/a"
    elif edit == "zero_train":
        frame.loc[0, "n_train"] = 0
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    args = {"score_a": "a", "score_b": "b", **kwargs}
    with pytest.raises(InputError, match=message) as err:
        corrected_t_from_csv(path, **args)
    assert "mine.csv" in str(err.value), "the error must name the file"
