"""One GPU per training job when Snakemake runs several at once on one machine.

Snakemake's `--resources gpu=N` limits how many GPU jobs run at once but assigns no device ids. Each job
claims a free id by taking an exclusive lock on `<lock_dir>/gpu<id>.lock` and sets CUDA_VISIBLE_DEVICES to it
before CUDA is initialised; the lock is held for the life of the process (the OS drops it when the process
ends, even if it is killed), so the next job finds the id free again.

Under SLURM (SLURM_JOB_ID set) the scheduler already chose the GPU and set CUDA_VISIBLE_DEVICES: keep it.
The ids to share come from CMDNET_GPU_IDS ("0,1"; also how tests fake GPUs on a machine without any), else
from a CUDA_VISIBLE_DEVICES the user set for the whole run ("2,3": only those are claimed), else from
`nvidia-smi`; with none, the job runs on the CPU.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

_held_locks: list = []  # open lock files of this process: closing them would release the claim


@dataclass(frozen=True)
class GpuClaim:
    gpu_id: str | None     # None: no GPU (CPU job)
    source: str            # "slurm", "lock", "none"

    def describe(self) -> str:
        if self.gpu_id is None:
            return "no GPU claimed (CPU)"
        return f"GPU {self.gpu_id} ({self.source}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')})"


def available_gpu_ids() -> list[str]:
    override = os.environ.get("CMDNET_GPU_IDS")
    if override is not None:
        return [i.strip() for i in override.split(",") if i.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # the user (or a scheduler) already narrowed the GPUs: claim among those only
        return [i.strip() for i in visible.split(",") if i.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def default_lock_dir() -> Path:
    return Path(os.environ.get("CMDNET_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / f"cmdnet-gpu-locks-{os.getuid()}"))


def claim_gpu(lock_dir: Path | None = None, *, timeout_s: float = 3600.0, poll_s: float = 0.5,
              log: Callable[[str], None] = print) -> GpuClaim:
    """Claim a GPU for this process and set CUDA_VISIBLE_DEVICES. Call before anything touches CUDA."""
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("CUDA_VISIBLE_DEVICES"):
        return GpuClaim(os.environ["CUDA_VISIBLE_DEVICES"], "slurm")
    ids = available_gpu_ids()
    if not ids:
        return GpuClaim(None, "none")
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    waited = False
    while True:
        for gpu_id in ids:
            handle = open(lock_dir / f"gpu{gpu_id}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_locks.append(handle)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
            return GpuClaim(gpu_id, "lock")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {ids} after {timeout_s:.0f} s (locks in {lock_dir}); "
                               "is --resources gpu=N larger than the number of GPUs?")
        if not waited:
            log(f"all GPUs {ids} are busy; waiting for one to be released")
            waited = True
        time.sleep(poll_s)
