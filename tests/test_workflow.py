"""The real Snakemake DAG, end to end, on the tiny synthetic configuration (tests/configs/tiny.yaml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pydicom
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(TINY), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One full run; GPUs are faked (CMDNET_GPU_IDS) so the slot allocator runs as on a 2-GPU machine."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    snakemake(workdir, "--cores", "2", "--resources", "gpu=2",
              env={"CMDNET_GPU_IDS": "0,1", "CMDNET_GPU_LOCK_DIR": str(workdir / "gpu_locks")})
    return workdir


def test_every_table_is_written_with_the_papers_rows_and_columns(tiny_run):
    tables = tiny_run / "results" / "tables"
    for stem in ["table1_mvi", "table2_mvi_ablation", "table_mvi_binary", "table1_grade", "table2_grade_fusion"]:
        for ext in ["md", "csv", "tex"]:
            assert (tables / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext} missing or empty"
    t1 = pd.read_csv(tables / "table1_mvi.csv")
    assert list(t1["method"]) == ["concat2s", "kd_ours", "ours", "clinical_lr"], (
        "Table 1 rows: configured Table-1 methods, ours last, then the clinical-only reference")
    reference = t1[t1["method"] == "clinical_lr"].iloc[0]
    assert reference["Method"] == "Clinical-only LR †" and pd.isna(reference["p-value (corrected t)"])
    kd = t1[t1["method"] == "kd_ours"].iloc[0]
    assert 0 <= kd["p-value (corrected t)"] <= kd["p-value (corrected t, Holm)"] <= 1
    assert kd["auc_diff_ci_low"] <= kd["auc_diff_mean"] <= kd["auc_diff_ci_high"]
    t2 = pd.read_csv(tables / "table2_mvi_ablation.csv")
    assert list(t2["method"]) == ["s_pre_hbp", "ours"]
    md = (tables / "table1_mvi.md").read_text()
    assert ("| Method | F1-score (%) | Accuracy (%) | AUC (%) | p-value (corrected t) | p-value (corrected t, Holm) "
            "| p-value (bootstrap, conditional on the models) |") in md
    assert "2 x 3-fold cross-validation (6 test folds)" in md and "Primary test: corrected resampled t-test" in md
    assert "† Uses clinical data; not an MRI-only method" in md
    summary = pd.read_csv(tiny_run / "results" / "mvi" / "summary.csv").set_index("name")
    assert summary.loc["clinical_lr", "role"] == "clinical data only (reference)"
    binary = pd.read_csv(tables / "table_mvi_binary.csv")
    assert list(binary["method"]) == ["s_pre_hbp", "concat2s", "kd_ours", "ours", "clinical_lr", "teacher"]
    g1 = pd.read_csv(tables / "table1_grade.csv")
    assert list(g1["Method"]) == ["3D local", "3D local and non-local fusion"]
    for name in ["roc_pairwise", "confusion_matrix", "calibration", "training_curves_ours",
                 "training_curves_concat2s"]:
        assert (tiny_run / "results" / "figures" / "mvi" / f"{name}.png").stat().st_size > 1000


def test_out_of_fold_predictions_cover_every_patient_once_per_repeat(tiny_run):
    labels = pd.read_parquet(tiny_run / "results" / "cohort" / "labels.parquet")
    for method in ["s_pre_hbp", "kd_ours", "ours"]:
        pred = pd.read_parquet(tiny_run / "results" / "mvi" / "methods" / method / "oof_predictions.parquet")
        assert sorted(pred["repeat"].unique()) == [0, 1], "tiny.yaml asks for two repeated partitions"
        for _, one in pred.groupby("repeat"):
            assert sorted(one["patient_id"]) == sorted(labels["patient_id"])
        merged = pred.merge(labels, on="patient_id")
        assert (merged["label"] == merged["mvi"]).all()
    folds = pd.read_parquet(tiny_run / "results" / "folds" / "mvi.parquet")
    assert list(folds.columns) == ["patient_id", "repeat", "fold"]
    by_repeat = folds.pivot(index="patient_id", columns="repeat", values="fold")
    assert (by_repeat[0] != by_repeat[1]).any(), "the two partitions must differ"


def test_training_jobs_claimed_the_fake_gpus(tiny_run):
    logs = list((tiny_run / "results" / "logs").glob("train_*/*.log"))
    assert logs
    claimed = set()
    for log in logs:
        match = re.search(r"GPU (\d) \(lock; CUDA_VISIBLE_DEVICES=(\d)\)", log.read_text())
        assert match, f"{log.name} does not say which GPU it claimed"
        assert match.group(1) == match.group(2)
        claimed.add(match.group(1))
    assert claimed == {"0", "1"}, "two GPU slots and two cores: both GPUs should have been used"


def test_no_dicom_or_clinical_identifier_reaches_results_or_logs(tiny_run):
    cohort = tiny_run / "resources" / "synthetic_cohort"
    secrets = set()
    for dcm in list((cohort / "dicom").rglob("*.dcm"))[:50]:
        ds = pydicom.dcmread(dcm, stop_before_pixels=True)
        for keyword in ["PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber",
                        "ReferringPhysicianName"]:
            value = str(ds.get(keyword, "")).strip()
            if len(value) >= 4:
                secrets.add(value)
    secrets |= {n for n in pd.read_csv(cohort / "clinical.csv", dtype=str)["name"].dropna() if len(n) >= 4}
    assert len(secrets) > 10, "the synthetic cohort should carry fake identifiers to look for"
    found = []
    for path in [*(tiny_run / "results").rglob("*"), *(tiny_run / ".snakemake" / "log").glob("*")]:
        if path.is_file():
            data = path.read_bytes()
            found += [(path.name, s) for s in secrets if s.encode() in data]
    assert not found, f"identifiers found in outputs: {found[:5]}"


def test_changing_one_methods_config_reruns_only_that_methods_jobs(tiny_run, tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("mvi:\n  overrides:\n    kd_ours:\n      training: {epochs: 3}\n")
    proc = snakemake(tiny_run, "--cores", "1", "-n", "--configfile", str(TINY), str(override))
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    assert stats.get("train_method") == "6", f"expected only kd_ours' 2 x 3 folds to retrain: {stats}"
    assert stats.get("predict_mvi") == "1" and "train_teacher" not in stats, stats
    assert "kd_ours" in proc.stdout and "method=ours," not in proc.stdout


def test_an_objective_setting_reruns_only_the_methods_trained_with_it(tiny_run, tmp_path):
    override = tmp_path / "objective.yaml"
    override.write_text("mvi:\n  objectives:\n    cmdnet: {class_kd: {weight: 1.0, temperature: 2.0}}\n")
    proc = snakemake(tiny_run, "--cores", "1", "-n", "--configfile", str(TINY), str(override))
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    assert stats.get("train_method") == "6", f"only ours (2 x 3 folds) uses the cmdnet objective: {stats}"
    assert "train_teacher" not in stats and "dicom_to_nifti" not in stats, stats


def test_a_typo_inside_method_overrides_is_refused(tmp_path):
    bad = tmp_path / "override_typo.yaml"
    bad.write_text("mvi:\n  overrides:\n    ours: {training: {epohcs: 3}}\n")
    proc = snakemake(tmp_path, "--cores", "1", "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0 and "training.epohcs" in proc.stdout + proc.stderr


def test_report_gathers_tables_and_figures(tiny_run):
    snakemake(tiny_run, "--cores", "1", "--report", "results/report.html")
    html = (tiny_run / "results" / "report.html").read_bytes()
    assert len(html) > 10_000 and b"table1_mvi" in html and b"roc_pairwise" in html


def test_lint_is_clean():
    proc = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_a_config_typo_stops_the_workflow_at_once_naming_the_key(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("mvi:\n  trainng: {epochs: 3}\n")
    proc = snakemake(tmp_path, "--cores", "1", "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "trainng" in proc.stdout + proc.stderr, "the error must name the unknown key"
    assert not (tmp_path / "results").exists(), "nothing may run with an invalid config"


def test_unknown_method_name_is_refused_with_the_known_names(tmp_path):
    bad = tmp_path / "method.yaml"
    bad.write_text("mvi:\n  methods: [ours, concatt]\n")
    proc = snakemake(tmp_path, "--cores", "1", "-n", "--configfile", str(bad), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "unknown MVI method 'concatt'" in output and "kd_ours" in output, output


def test_grading_outputs_follow_the_configured_methods(tmp_path):
    """Without any fusion method there is no Table 2 and no CIFA spectra to make; the DAG must not ask for them."""
    local_only = tmp_path / "local_only.yaml"
    local_only.write_text("grade:\n  methods: [local, nonlocal]\n")
    proc = snakemake(tmp_path, "--cores", "1", "-n", "--configfile", str(TINY), str(local_only))
    assert "table1_grade.md" in proc.stdout
    assert "table2_grade_fusion" not in proc.stdout and "cifa_spectra.png" not in proc.stdout


def test_device_cuda_without_a_gpu_stops_the_training_job_with_one_line_before_training(tiny_run, tmp_path):
    override = tmp_path / "cuda.yaml"
    override.write_text("mvi:\n  overrides:\n    s_pre_hbp: {training: {device: cuda}}\n")
    target = "results/mvi/methods/s_pre_hbp/repeat0/fold0/model.pt"
    proc = snakemake(tiny_run, "--cores", "1", target, "--configfile", str(TINY), str(override), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "cmdnet: error: device 'cuda' was asked for, but torch" in output, output[-3000:]
    assert "stopped on a problem with the input or the configuration" in output, "the summary at the end"
    log = (tiny_run / "results" / "logs" / "train_method" / "s_pre_hbp_repeat0_fold0.log").read_text()
    assert "Traceback" not in log and "epoch" not in log, "no training may start"
    snakemake(tiny_run, "--cores", "1", target)  # back to the configured device for the other tests


def test_device_auto_names_the_cpu_in_every_progress_line(tiny_run):
    log = (tiny_run / "results" / "logs" / "train_method" / "ours_repeat0_fold0.log").read_text()
    epochs = [line for line in log.splitlines() if " epoch " in line]
    assert epochs and all("[cpu (" in line for line in epochs), log[-2000:]
    assert "device: cpu" in log
    # tiny_run fakes two GPUs: a job that claimed one and trains on the CPU must say so
    assert "WARNING: this job claimed GPU" in log and "runs on the CPU" in log
