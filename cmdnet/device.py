"""Which device a job computes on: one GPU per training job, and the device policy of both experiments.

GPU slots. Snakemake's `--resources gpu=N` limits how many GPU jobs run at once but assigns no device ids. Each job
claims a free id by taking an exclusive lock on `<lock_dir>/gpu<id>.lock` and sets CUDA_VISIBLE_DEVICES to it
before CUDA is initialised; the lock is held for the life of the process (the OS drops it when the process
ends, even if it is killed), so the next job finds the id free again.

Under SLURM (SLURM_JOB_ID set) the scheduler already chose the GPU and set CUDA_VISIBLE_DEVICES: keep it.
The ids to share come from CMDNET_GPU_IDS ("0,1"; also how tests fake GPUs on a machine without any), else
from a CUDA_VISIBLE_DEVICES the user set for the whole run ("2,3": only those are claimed), else from
`nvidia-smi`; with none, the job runs on the CPU.

Device policy: `resolve_device` (auto | cpu | cuda) and the autocast dtype of a precision setting.
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
_claims: list = []      # the GPU claims of this process (for the device policy's warning)


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
        _claims.append(GpuClaim(os.environ["CUDA_VISIBLE_DEVICES"], "slurm"))
        return _claims[-1]
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
            _claims.append(GpuClaim(gpu_id, "lock"))
            return _claims[-1]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {ids} after {timeout_s:.0f} s (locks in {lock_dir}); "
                               "is --resources gpu=N larger than the number of GPUs?")
        if not waited:
            log(f"all GPUs {ids} are busy; waiting for one to be released")
            waited = True
        time.sleep(poll_s)


# ---------------------------------------------------------------- device policy

DEVICE_POLICIES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "mixed", "bf16", "fp16")


def resolve_device(policy: str, *, log: Callable[[str], None] = print):
    """The torch device a job computes on, by the configured policy (`mvi.training.device`,
    `grade.training.device`), and say which in the log.

    - `cpu`: the CPU.
    - `cuda`: the first visible CUDA device; stops at once (ConfigError) when torch sees none, naming what torch
      reports, before any training.
    - `auto`: CUDA when torch sees a usable device, else the CPU. A job that claimed a GPU (a lock or SLURM's
      CUDA_VISIBLE_DEVICES) but ends up on the CPU says so loudly: it is almost always a CPU-only torch build
      or a driver mismatch, and the run would be many times slower than planned.
    """
    import torch

    from cmdnet.config import ConfigError

    if policy not in DEVICE_POLICIES:
        raise ConfigError(f"device {policy!r}: expected one of {DEVICE_POLICIES}")
    usable = torch.cuda.is_available()
    if policy == "cuda" and not usable:
        raise ConfigError(f"device 'cuda' was asked for, but torch {torch.__version__} sees no usable CUDA device "
                          f"(CUDA build: {torch.version.cuda or 'none, a CPU-only build'}; "
                          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                          "see README 'Installing on a GPU machine', or set the device to auto or cpu")
    device = torch.device("cuda" if policy == "cuda" or (policy == "auto" and usable) else "cpu")
    if device.type == "cpu" and _claimed_gpu() is not None:
        log(f"WARNING: this job claimed GPU {_claimed_gpu()} but runs on the CPU: torch {torch.__version__} "
            f"sees no usable CUDA device (CUDA build: {torch.version.cuda or 'none'}). Training will be slow.")
    log(f"device: {describe_device(device)} (policy {policy})")
    return device


def describe_device(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"


def autocast_dtype(precision: str, device):
    """The autocast dtype of a precision setting on a device, or None for fp32.

    `mixed` is bf16 where the device supports it (CPUs, Ampere and newer GPUs), else fp16 (older GPUs; the
    training loop then scales the loss with a GradScaler)."""
    import torch

    if precision not in PRECISIONS:
        from cmdnet.config import ConfigError
        raise ConfigError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if precision == "fp32":
        return None
    if precision == "mixed":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def _claimed_gpu() -> str | None:
    if _claims:
        return _claims[-1].gpu_id
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("CUDA_VISIBLE_DEVICES"):
        return os.environ["CUDA_VISIBLE_DEVICES"]
    return None


def conv3d_channels_last(modules) -> None:
    """Channels-last memory for the weights of every 3D convolution in `modules`: on this project's 2-core CPU the
    MVI student trains 1.52x faster (`benchmarks/bench_training.py`) and a default grading job takes 41-45 s
    instead of 57 s (README, Performance). Only the 3D convolutions:
    `Module.to(memory_format=...)` on a whole network would also try to convert the 4D weights of 2D
    convolutions (M2Net, the grading 2D models) and fail. Call it before loading a checkpoint into the network,
    so the loaded weights keep the layout."""
    import torch

    for m in modules.modules():
        if isinstance(m, torch.nn.Conv3d):
            m.to(memory_format=torch.channels_last_3d)
