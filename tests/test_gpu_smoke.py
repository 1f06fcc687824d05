"""benchmarks/gpu_smoke.py: every network of the paper configuration steps, and a missing GPU is said plainly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from cmdnet.config import read_config
from cmdnet.mvi.methods import METHODS, teachers_needed
from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_smoke.py"
PAPER = REPO / "config" / "paper.yaml"


def run_smoke(*args: str, timeout: float) -> subprocess.CompletedProcess:
    # one torch thread, as every test here (conftest): tests run side by side on a 2-core machine
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--threads", "1"], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def paper_network_names() -> list[str]:
    """From the registries and config/paper.yaml, not from the script under test."""
    config = read_config(PAPER)
    methods = [m for m in config["mvi"]["methods"] if not METHODS[m].clinical_only]  # clinical_lr: no network
    grade = [f"{method}/{dim}" for dim in config["grade"]["dims"] for method in config["grade"]["methods"]]
    return [*teachers_needed(methods), *methods, *grade]


@pytest.mark.slow
def test_cpu_smoke_steps_every_paper_network_and_projects_the_wall_time():
    proc = run_smoke("--device", "cpu", "--steps", "1", timeout=300)
    assert proc.returncode == 0, f"gpu_smoke failed on the CPU:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    rows = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    missing = [name for name in paper_network_names() if name not in rows]
    assert not missing, f"networks of config/paper.yaml without a row in the output: {missing}\n{proc.stdout}"
    assert "MVI crop 64 x 64 x 32" in proc.stdout, f"not the paper's MVI crop:\n{proc.stdout[:600]}"
    assert "FAILED" not in proc.stdout, proc.stdout
    assert any(line.startswith("projected wall time") for line in proc.stdout.splitlines()), proc.stdout
    assert "8 GPUs" in proc.stdout, f"no projection for 8 GPUs:\n{proc.stdout[-1500:]}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable CUDA device")
def test_cuda_without_a_gpu_stops_with_a_clear_message():
    proc = run_smoke("--device", "cuda", "--steps", "1", timeout=120)
    assert proc.returncode != 0, f"--device cuda ran without a GPU:\n{proc.stdout[-1500:]}"
    assert "no usable CUDA device" in proc.stderr, f"unclear message:\n{proc.stderr}"
    assert "network" not in proc.stdout, f"it measured networks before stopping:\n{proc.stdout[-1500:]}"
