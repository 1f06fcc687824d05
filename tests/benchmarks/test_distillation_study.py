"""The distillation study's table from the seeds' summaries: means across seeds and paired t-intervals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
AUCS = {0: {"ours": 0.70, "s_pre_hbp": 0.66, "kd_ours": 0.69, "teacher": 0.80, "clinical_lr": 0.79},
        1: {"ours": 0.68, "s_pre_hbp": 0.67, "kd_ours": 0.66, "teacher": 0.78, "clinical_lr": 0.80},
        2: {"ours": 0.72, "s_pre_hbp": 0.65, "kd_ours": 0.70, "teacher": 0.81, "clinical_lr": 0.78}}


def _fake_runs(out: Path) -> None:
    for seed, aucs in AUCS.items():
        summary = out / f"seed{seed}" / "results" / "mvi" / "summary.csv"
        summary.parent.mkdir(parents=True)
        pd.DataFrame({"name": list(aucs), "pooled_auc_macro_ovo": list(aucs.values())}).to_csv(summary, index=False)


def test_aggregate_only_writes_the_table_with_paired_t_intervals(tmp_path):
    _fake_runs(tmp_path)
    proc = subprocess.run([sys.executable, "benchmarks/distillation_study.py", "--aggregate-only", "--out",
                           str(tmp_path), "--seeds", "0", "1", "2"], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "study.csv", index_col="seed")
    assert table.loc[1, "kd_ours"] == pytest.approx(0.66)
    md = (tmp_path / "study.md").read_text()
    diff = np.array([AUCS[s]["ours"] - AUCS[s]["s_pre_hbp"] for s in AUCS])
    half = 4.302653 * diff.std(ddof=1) / np.sqrt(3)   # t(0.975, df 2)
    assert f"| {diff.mean():+.3f} | [{diff.mean() - half:+.3f}, {diff.mean() + half:+.3f}] | 3 of 3 |" in md, md
    assert "mean ± SD across seeds" in md and "0.700 ± 0.020" in md


def test_each_seed_runs_the_committed_study_configuration_up_to_the_mvi_summary(tmp_path):
    """The command of one seed, as a dry run: the study's methods, its teachers and the clinical reference, no
    grading; the seed reaches both the cohort and the partitions."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import distillation_study
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    command = distillation_study.seed_command(3, tmp_path, REPO / "config" / "study_distillation.yaml", 2,
                                              ["--dry-run"])
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = proc.stdout
    for rule in ("train_teacher", "train_method", "clinical_reference", "evaluate_mvi"):
        assert f"rule {rule}:" in jobs, rule
    assert "train_grade_fold" not in jobs
    assert "ours_lclin" in jobs and "teacher_lclin" in jobs
    assert (tmp_path / "seed3" / "seed.yaml").read_text() == "seed: 3\nsynthetic:\n  seed: 3\n"
