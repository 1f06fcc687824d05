"""The seam between workflow and library: a rule's named files and params become a stage's arguments, and a job
that meets a problem with its input ends with the library's one-line message, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cmdnet.stages import job_arguments, job_errors

REPO = Path(__file__).resolve().parents[1]


class Files(list):
    """A list of paths with named entries, as Snakemake's `input`/`output` (its Namedlist)."""

    def __init__(self, named: dict):
        super().__init__(v for value in named.values() for v in (value if isinstance(value, list) else [value]))
        self.named = named

    def items(self):
        return self.named.items()


class Job:
    def __init__(self, tmp: Path, **params):
        self.input = Files({"sheet": "cohort.csv", "images": ["a.nii.gz", "b.nii.gz"]})
        self.output = Files({"labels": "labels.parquet"})
        self.params = Files(params)
        self.log = [str(tmp / "job.log")]
        self.threads = 2


def test_named_inputs_outputs_and_params_become_keyword_arguments(tmp_path):
    args = job_arguments(Job(tmp_path, phases=["PRE", "HBP"], seed=3))
    assert args == {"sheet": "cohort.csv", "images": ["a.nii.gz", "b.nii.gz"], "out_labels": "labels.parquet",
                    "phases": ["PRE", "HBP"], "seed": 3}


SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
from cmdnet.errors import CohortError
from cmdnet.stages import run_job
from tests.test_stages import Job
from pathlib import Path

def stage(*, sheet, images, out_labels, patient):
    raise CohortError("label 'M3' is not one of M0, M1, M2", patient=patient, path=sheet)

run_job(stage, Job(Path({tmp!r}), patient="P007"))
"""


def _run_failing_job(tmp_path, **env):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(repo=str(REPO), tmp=str(tmp_path)))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_an_input_problem_ends_the_job_with_one_line_and_status_2(tmp_path):
    started = time.time() - 1
    proc = _run_failing_job(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "cmdnet: error: patient P007, cohort.csv: label 'M3' is not one of M0, M1, M2"
    assert "Traceback" not in (tmp_path / "job.log").read_text()
    assert job_errors(tmp_path, started) == [(str(tmp_path / "job.log"),
                                              "patient P007, cohort.csv: label 'M3' is not one of M0, M1, M2")]


def test_the_traceback_is_there_when_asked_for(tmp_path):
    proc = _run_failing_job(tmp_path, CMDNET_VERBOSE="1")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and proc.stderr.rstrip().endswith("M0, M1, M2")
