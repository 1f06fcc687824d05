"""DeLong's test against pROC's published values (aSAH data) and against a brute-force DeLong.

Reference values: pROC's own test suite (xrobin/pROC tests/testthat/test-roc.test.R, test-var.R,
test-ci.auc.R), printed there to 15 significant digits. Tolerance: relative 1e-9 (both sides compute
the same closed-form statistic in double precision). See tests/stats/data/README.md for the data source.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmdnet.errors import InputError
from cmdnet.evaluation.stats.delong import delong_ci, delong_from_csv, delong_roc_test

ASAH = Path(__file__).parent / "data" / "aSAH.csv"
REL = 1e-9

# roc.test(r.a, r.b) in pROC: Z, p, 95% CI of AUC_a - AUC_b
PROC_TESTS = [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054, -0.2876917446341914, 0.0488706064228094),
]
PROC_AUC = {"wfns": 0.823678861788618, "ndka": 0.611957994579946, "s100b": 0.731368563685637}
PROC_VAR = {"wfns": 0.00146991470882363, "ndka": 0.0031908105493913, "s100b": 0.00266868245717244}


@pytest.fixture(scope="module")
def asah():
    frame = pd.read_csv(ASAH)
    assert len(frame) == 113 and (frame.outcome == "Poor").sum() == 41
    return frame


@pytest.mark.parametrize("a,b,z,p,lo,hi", PROC_TESTS)
def test_delong_matches_proc_roc_test(asah, a, b, z, p, lo, hi):
    y = (asah.outcome == "Poor").astype(int).to_numpy()
    res = delong_roc_test(y, asah[a].to_numpy(), asah[b].to_numpy())
    assert res.z == pytest.approx(z, rel=REL)
    assert res.p == pytest.approx(p, rel=REL)
    assert res.ci_diff == pytest.approx((lo, hi), rel=REL)
    assert res.auc_a == pytest.approx(PROC_AUC[a], rel=REL)
    assert res.auc_b == pytest.approx(PROC_AUC[b], rel=REL)
    assert res.var_a == pytest.approx(PROC_VAR[a], rel=REL)
    assert res.var_b == pytest.approx(PROC_VAR[b], rel=REL)
    swapped = delong_roc_test(y, asah[b].to_numpy(), asah[a].to_numpy())
    assert swapped.z == pytest.approx(-z, rel=REL) and swapped.p == pytest.approx(p, rel=REL)


def test_delong_ci_matches_proc_ci_auc(asah):
    y = (asah.outcome == "Poor").astype(int).to_numpy()
    auc, lo, hi = delong_ci(y, asah["ndka"].to_numpy())  # pROC: ci.auc(r.ndka)
    assert (lo, auc, hi) == pytest.approx((0.501244999271703, 0.611957994579946, 0.722670989888189), rel=REL)


def test_identical_scores_give_z0_p1(asah):
    y = (asah.outcome == "Poor").astype(int).to_numpy()
    res = delong_roc_test(y, asah.wfns.to_numpy(), asah.wfns.to_numpy())
    assert res.z == 0 and res.p == 1


def test_direction_is_never_flipped(asah):
    y = (asah.outcome == "Poor").astype(int).to_numpy()
    res = delong_roc_test(y, -asah.s100b.to_numpy(), asah.wfns.to_numpy())
    assert res.auc_a == pytest.approx(1 - PROC_AUC["s100b"], rel=REL)
    assert res.auc_a < 0.5 and res.z < 0


def _brute_force_delong(y, a, b):
    """DeLong (1988) by loops: psi kernel with ties 1/2, placements, S = S10/m + S01/n (ddof 1)."""
    def psi(x, v):
        return 1.0 if x > v else 0.5 if x == v else 0.0
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = len(pos), len(neg)
    v10 = np.array([[sum(psi(s[i], s[j]) for j in neg) / n for i in pos] for s in (a, b)])
    v01 = np.array([[sum(psi(s[i], s[j]) for i in pos) / m for j in neg] for s in (a, b)])
    auc = v10.mean(axis=1)
    s10 = np.array([[np.sum((v10[r] - auc[r]) * (v10[c] - auc[c])) / (m - 1) for c in range(2)] for r in range(2)])
    s01 = np.array([[np.sum((v01[r] - auc[r]) * (v01[c] - auc[c])) / (n - 1) for c in range(2)] for r in range(2)])
    cov = s10 / m + s01 / n
    z = (auc[0] - auc[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return auc, cov, z


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    a = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes many ties
    b = rng.integers(0, 4, 40).astype(float) + y  # ordinal score, heavy ties
    auc, cov, z = _brute_force_delong(y, a, b)
    res = delong_roc_test(y, a, b)
    assert (res.auc_a, res.auc_b) == pytest.approx(tuple(auc), abs=1e-12)
    assert (res.var_a, res.var_b, res.cov) == pytest.approx((cov[0, 0], cov[1, 1], cov[0, 1]), abs=1e-12)
    assert res.z == pytest.approx(z, rel=1e-10)


def test_delong_from_csv_positive_and_defaults(asah):
    explicit = delong_from_csv(ASAH, truth="outcome", score_a="wfns", score_b="s100b", positive="Poor")
    implicit = delong_from_csv(ASAH, truth="outcome", score_a="wfns", score_b="s100b")  # "Poor" sorts last
    assert explicit["positive"] == implicit["positive"] == "Poor"
    assert explicit["z"] == pytest.approx(PROC_TESTS[0][2], rel=REL)
    assert (explicit["n_positive"], explicit["n_negative"]) == (41, 72)
    json.dumps(explicit)  # JSON-serialisable
    # positive = Good reverses the meaning of the scores: AUCs become 1 - AUC, never silently flipped back
    reverse = delong_from_csv(ASAH, truth="outcome", score_a="wfns", score_b="s100b", positive="Good")
    assert reverse["auc_a"] == pytest.approx(1 - PROC_AUC["wfns"], rel=REL)


def test_delong_from_csv_numeric_truth(tmp_path, asah):
    frame = asah.assign(outcome=(asah.outcome == "Poor").astype(int))
    path = tmp_path / "num.csv"
    frame.to_csv(path, index=False)
    res = delong_from_csv(path, truth="outcome", score_a="ndka", score_b="s100b")
    assert res["positive"] == 1 and res["z"] == pytest.approx(PROC_TESTS[2][2], rel=REL)
    assert delong_from_csv(path, truth="outcome", score_a="ndka", score_b="s100b", positive="1")["z"] == res["z"]


@pytest.mark.parametrize("edit,kwargs,message", [
    (None, {"score_a": "nope"}, "missing column"),
    ("text", {}, "non-numeric"),
    ("nan", {}, "NaN"),
    ("one_class", {}, "one class|exactly two values"),
    (None, {"positive": "Bad"}, "does not occur"),
])
def test_delong_from_csv_errors(tmp_path, asah, edit, kwargs, message):
    frame = asah.copy()
    if edit == "text":
        frame["s100b"] = frame["s100b"].astype(object)
        frame.loc[3, "s100b"] = "high"
    elif edit == "nan":
        frame.loc[5, "s100b"] = np.nan
    elif edit == "one_class":
        frame["outcome"] = "Poor"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    args = {"truth": "outcome", "score_a": "wfns", "score_b": "s100b", **kwargs}
    with pytest.raises(InputError, match=message) as info:
        delong_from_csv(path, **args)
    assert str(path) in str(info.value)


def test_cli_prints_json_matching_proc():
    out = subprocess.run([sys.executable, "-m", "cmdnet", "stats", "delong", "--csv", str(ASAH),
                          "--truth", "outcome", "--score-a", "s100b", "--score-b", "wfns", "--positive", "Poor"],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["auc_a"] == pytest.approx(PROC_AUC["s100b"], rel=REL)
    assert result["auc_b"] == pytest.approx(PROC_AUC["wfns"], rel=REL)
    assert result["z"] == pytest.approx(-PROC_TESTS[0][2], rel=REL)
    assert result["p"] == pytest.approx(PROC_TESTS[0][3], rel=REL)
