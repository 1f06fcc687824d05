"""The GPU-slot allocator: concurrent jobs on one machine get distinct GPU ids (faked with CMDNET_GPU_IDS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from cmdnet.device import claim_gpu

HOLDER = """
import os, sys, time
from cmdnet.device import claim_gpu
claim = claim_gpu(poll_s=0.05, timeout_s=30, log=lambda m: print(m, file=sys.stderr))
print(claim.gpu_id, os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
sys.stdin.readline()  # hold the GPU until told to finish
"""


def _start_holder(env):
    return subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _env(tmp_path, ids="0,1"):
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")}
    env.update(CMDNET_GPU_IDS=ids, CMDNET_GPU_LOCK_DIR=str(tmp_path / "locks"))
    return env


def test_two_concurrent_jobs_get_different_gpus_and_a_third_waits_for_a_free_one(tmp_path):
    env = _env(tmp_path)
    first, second = _start_holder(env), None
    try:
        gpu_a, visible_a = first.stdout.readline().split()
        second = _start_holder(env)
        gpu_b, visible_b = second.stdout.readline().split()
        assert {gpu_a, gpu_b} == {"0", "1"}, "two concurrent jobs must hold different GPUs"
        assert (visible_a, visible_b) == (gpu_a, gpu_b), "CUDA_VISIBLE_DEVICES must name the claimed GPU"

        third = _start_holder(env)
        time.sleep(0.5)
        assert third.poll() is None
        first.communicate("\n", timeout=10)          # the first job ends: its GPU is free again
        gpu_c, _ = third.stdout.readline().split()
        assert gpu_c == gpu_a, "the waiting job must get the GPU the finished job released"
        third.communicate("\n", timeout=10)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.communicate("\n", timeout=10)


def test_slurm_assignment_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("CMDNET_GPU_IDS", "0,1")
    claim = claim_gpu(tmp_path)
    assert (claim.gpu_id, claim.source) == ("1", "slurm")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_no_gpu_means_cpu(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CMDNET_GPU_IDS", "")
    claim = claim_gpu(tmp_path)
    assert claim.gpu_id is None and "CPU" in claim.describe()


def test_a_user_set_cuda_visible_devices_limits_the_claimable_gpus(tmp_path, monkeypatch):
    from cmdnet.device import available_gpu_ids

    monkeypatch.delenv("CMDNET_GPU_IDS", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert available_gpu_ids() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert available_gpu_ids() == [], "an empty CUDA_VISIBLE_DEVICES means no GPU"
