"""The workflow sees every patient's own inputs: a changed mask reruns that patient's jobs only, a column no job
reads reruns nothing, and a cohort with problems stops before any job with the whole list (issue 15).

Runs the real Snakemake DAG (data stages only) on a 6-patient cohort built from a real scanner series.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pydicom
import pytest
import yaml

from tests.conftest import REPO
from tests.data.test_validate import SECRET, _box_mask, _build

pytestmark = pytest.mark.slow

# Labels, datasets and the clinical table: every training job's inputs (6 patients are too few for the folds'
# inner validation splits, so the folds are left out here).
DATA_TARGETS = ["results/datasets/mvi.npz", "results/datasets/grade.npz", "results/cohort/labels.parquet",
                "results/clinical/clinical_clean.parquet"]


def _snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(workdir), "--configfile", str(REPO / "tests" / "configs" / "tiny.yaml"),
                           str(config), *args], capture_output=True, text=True, timeout=900)


def _planned(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts of a dry run's "Job stats" table ({} when nothing is to be done)."""
    counts, table = {}, False
    for line in proc.stdout.splitlines():
        if line.startswith("Job stats"):
            table, counts = True, {}
            continue
        parts = line.split()
        if table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
        elif table and not parts and counts:
            table = False
    return counts


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    case = _build(tmp_path_factory.mktemp("wf_inputs") / "cohort", n=6)
    root = case["root"]
    for path in sorted((root / "dicom" / "P01" / "PRE").iterdir()):   # free text that sites fill with anything
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = ds.ContrastBolusAgent = ds.ProtocolName = SECRET
        path.unlink()
        ds.save_as(path)
    user = yaml.safe_load((root / "config.yaml").read_text())
    user["cohort"] = {k: str(root / v) for k, v in user["cohort"].items()}
    user["roi"] = {"margin_mm": 0.0}               # the CT is 3 slices thin
    user["folds"] = {"mvi_k": 2, "grade_k": 2}     # 6 patients, 2 of each MVI class
    config = root / "workflow.yaml"
    config.write_text(yaml.safe_dump(user))
    workdir = root.parent / "run"
    done = _snakemake(workdir, config, "--cores", "2", *DATA_TARGETS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {**case, "workdir": workdir, "workflow_config": config}


def _files_holding(folder: Path, text: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_no_dicom_free_text_reaches_results(converted):
    assert (converted["workdir"] / "results" / "nifti" / "P01" / "PRE.json").is_file()
    assert _files_holding(converted["workdir"] / "results", "Secretname") == []


def test_a_rewritten_mask_reruns_that_patients_roi_job_and_what_follows_only(converted):
    root, workdir = converted["root"], converted["workdir"]
    assert _planned(_snakemake(workdir, converted["workflow_config"], "-n", *DATA_TARGETS)) == {}
    _box_mask(converted["ct"], root / "masks" / "P03_HBP.nii.gz", boxes=((210, 290, 210, 290, 0, 3),))
    plan = _snakemake(workdir, converted["workflow_config"], "-n", *DATA_TARGETS)
    assert _planned(plan) == {"extract_roi": 1, "assemble_mvi_dataset": 1, "assemble_grade_dataset": 1}, plan.stdout
    assert "wildcards: patient=P03" in plan.stdout
    done = _snakemake(workdir, converted["workflow_config"], "--cores", "2", *DATA_TARGETS)
    assert done.returncode == 0 and _planned(_snakemake(workdir, converted["workflow_config"], "-n",
                                                        *DATA_TARGETS)) == {}


def test_a_column_no_job_reads_reruns_nothing_so_no_training(converted):
    root, workdir = converted["root"], converted["workdir"]
    sheet = pd.read_csv(root / "cohort.csv", dtype=str, keep_default_na=False)
    sheet["note"] = "free text"
    sheet.to_csv(root / "cohort.csv", index=False)
    # Labels, datasets and the clinical table are every training job's inputs: none of them reruns.
    assert _planned(_snakemake(workdir, converted["workflow_config"], "-n", *DATA_TARGETS)) == {}


def test_a_cohort_with_problems_stops_before_any_job_with_the_whole_list(converted):
    root, workdir = converted["root"], converted["workdir"]
    _box_mask(converted["ct"], root / "masks" / "P02_PRE.nii.gz", boxes=())
    clinical = pd.read_csv(root / "clinical.csv", dtype=str, keep_default_na=False)
    clinical.loc[clinical["patient_id"] == "P04", "Albumin (g/L)"] = "390"
    clinical.loc[clinical["patient_id"] == "P05", "AFP"] = SECRET          # a name shifted into a column
    clinical.to_csv(root / "clinical.csv", index=False)
    proc = _snakemake(workdir, converted["workflow_config"], "--cores", "2", *DATA_TARGETS)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "3 problems in the cohort" in out, out[-3000:]
    assert "patient P02, phase PRE" in out and "patient P04" in out and "patient P05" in out
    assert "390" not in out and "Secretname" not in out, "a clinical cell was echoed"
    assert "Select jobs to execute" not in out, "no job may start"
    assert _files_holding(workdir / "results", "Secretname") == []
