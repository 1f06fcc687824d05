"""Smoke test and throughput of every network a configuration trains, on the device it will train on.

Run this first on a GPU machine:

    python benchmarks/gpu_smoke.py --device cuda

It builds every network the configuration trains (default: config/paper.yaml over config.yaml), as its training jobs
build them (`configured_networks.py`): the MVI teachers and methods at the configured crop and width (paper: 64 x 64
x 32, width 1) and every grading (method, dim) model at the configured widths. Each one runs `--warmup` untimed and
`--steps` timed training steps on the device, in every precision asked for, through the training jobs' own code:
- MVI: the job's task (`SupervisedTask`, or `DistillationTask` with its teacher, frozen in offline distillation and
  trained alongside in joint), its objective (`mvi.objectives`), augmentation, channels-last, AdamW, autocast to
  `cmdnet.device.autocast_dtype(precision)` and a GradScaler for fp16, step for step as
  `cmdnet.mvi.training.loop.fit`. A stage-wise network (Concat_2S) steps each stage as `fit_stagewise` trains it;
  its seconds per sample are the stages' sum, since every stage trains for all the epochs.
- Grading: `cmdnet.grade.train.train_model` itself, for warm-up + timed iterations on random patches (16^3, or
  16 x 16 slices for 2d). Its first iteration also builds the model, so at least one is untimed; a DCCA model
  also runs one untimed step of its correlation pre-training.

Printed per network and precision: parameters (the trained network, without a frozen teacher), batch size,
training samples/s, peak GPU memory (torch.cuda.max_memory_allocated, reset per network) and the projected
training time of that network in the whole configuration (seconds per sample x the samples it trains on:
`configured_networks.py`). Then, per precision, the projected wall time of the configuration's training on 1, 2, 4
and 8 GPUs: the training jobs are independent (one GPU each), so this assumes ideal scaling (total / GPUs), and it
leaves out data loading, validation, prediction and the queue's tail.

On the CPU it is a check that every network runs, not a benchmark: the batch sizes are cut to MVI 1 and grading 8
(said in the output; `--batch-size` sets both; the MVI loop never steps a single sample, but one steps here), there
is no warm-up step by default (nothing to tune there: the first step measured as fast as the second), and only fp32
runs unless `--precision` asks for bf16 (CPU bf16 is opt-in in the configuration too). The paper's MVI networks are
the bulk of it, 0.2-0.5 TFLOP a training sample each: `--device cpu --steps 1 --threads 1` took 60-65 s on a 2-core
machine that another job kept half busy (150 s with torch's two threads fighting that job for the cores).
`--crop X Y Z` sets a smaller MVI crop for a quicker check.

Exit status: 0 when every network stepped with a finite loss; 1 when one failed (the others still run; the
failures are listed last); 1 at once, with torch's view of the GPUs, when `--device cuda` finds no usable GPU.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from configured_networks import (
    PAPER_CONFIG,
    REPO,
    GradeNetwork,
    MviNetwork,
    crop_shape_zyx,
    grade_networks,
    grade_training_samples,
    mvi_networks,
    mvi_training_samples,
)

from cmdnet.config import ConfigError, read_config
from cmdnet.device import PRECISIONS, autocast_dtype, conv3d_channels_last, describe_device, resolve_device
from cmdnet.grade.methods import grade_method
from cmdnet.grade.train import GradeTrainConfig, train_model
from cmdnet.labels import MVI_CLASSES
from cmdnet.mvi.losses import TermContext
from cmdnet.mvi.objective import DistillationTask, SupervisedTask, build_objective
from cmdnet.mvi.training.data import Augmentation
from cmdnet.mvi.training.loop import Task, TrainConfig
from cmdnet.mvi.training.stagewise import (
    StageTask,
    only_stage_trainable,
    training_stages,
)

CPU_BATCH = {"mvi": 1, "grade": 8}  # MVI: the least that steps; grading: DCCA covariances want a few
GPU_COUNTS = (1, 2, 4, 8)


@dataclass
class Measurement:
    name: str
    label: str                           # the precision, with what mixed means on this device: "mixed (bf16)"
    batch: int
    samples: float                       # samples the network trains on in the whole configuration
    params: int = 0
    seconds_per_sample: float = float("nan")
    peak_bytes: int | None = None        # None on the CPU
    error: str | None = None

    @property
    def projected_seconds(self) -> float:
        return self.seconds_per_sample * self.samples


def dtype_name(precision: str, device: torch.device) -> str:
    """What a precision setting computes in on `device`: fp32, bf16 or fp16 (`mixed` is one of the last two)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(precision, device)]


def precision_label(precision: str, device: torch.device) -> str:
    return f"mixed ({dtype_name(precision, device)})" if precision == "mixed" else precision


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- MVI


def mvi_task(net: MviNetwork, cfg: TrainConfig) -> Task:
    """The task `train_teacher_fold` / `train_method_fold` trains for `net` (random weights, class-balanced labels)."""
    labels = np.arange(3 * len(MVI_CLASSES)) % len(MVI_CLASSES)

    def objective(terms: dict, prefix: str = ""):
        return build_objective(terms, TermContext(labels, len(MVI_CLASSES), cfg), f"objective of {net.name}",
                               prefix=prefix)

    model = net.build()
    if net.teacher is None:
        return SupervisedTask(model, objective(net.settings["objective"]), uses_clinical=net.builder == "teacher")
    mode = net.settings["distillation"]["mode"]
    teacher_objective = objective(net.settings["teacher_objective"], "teacher_") if mode == "joint" else None
    return DistillationTask(model, net.teacher.build(), objective(net.settings["objective"]), mode=mode,
                            teacher_objective=teacher_objective)


def timed_steps(task: Task, batch: dict[str, torch.Tensor], cfg: TrainConfig, device: torch.device, *, steps: int,
                warmup: int) -> float:
    """Seconds per sample of `steps` training steps after `warmup` ones, each as `loop.fit` takes it."""
    amp_dtype = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    task.modules.to(device)
    if cfg.channels_last:
        conv3d_channels_last(task.modules)
    optimiser = torch.optim.AdamW(task.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    augment = Augmentation.from_dict(cfg.augmentation)
    generator = torch.Generator().manual_seed(0)
    task.train_mode()

    def step() -> None:
        images = augment(batch["images"], generator)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            loss, terms = task.loss({**batch, "images": images})
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {terms}")
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()

    for _ in range(warmup):
        step()
    synchronize(device)
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - tic) / (steps * len(batch["labels"]))


def measure_mvi(net: MviNetwork, precision: str, batch_size: int, device: torch.device, *, steps: int,
                warmup: int) -> tuple[int, float]:
    """(parameters, seconds per training sample) of `net`'s training job at this precision and batch size."""
    cfg = TrainConfig.from_dict({**net.settings["training"], "batch_size": batch_size, "precision": precision})
    task = mvi_task(net, cfg)
    model = task.modules["model"]
    params = sum(p.numel() for p in model.parameters())
    batch = net.batch(batch_size, device)
    stages = training_stages(model) if isinstance(task, SupervisedTask) else []
    if not stages:
        return params, timed_steps(task, batch, cfg, device, steps=steps, warmup=warmup)
    seconds = 0.0
    for stage in stages:  # as fit_stagewise: one stage after another, the rest of the network frozen
        with only_stage_trainable(model, stage):
            seconds += timed_steps(StageTask(model, stage, task.objective), batch, cfg, device, steps=steps,
                                   warmup=warmup)
    return params, seconds


# ---------------------------------------------------------------- grading


def measure_grade(net: GradeNetwork, precision: str, batch_size: int, device: torch.device, *, section: dict,
                  steps: int, warmup: int) -> tuple[int, float]:
    """(parameters, seconds per training sample) of `train_model` on `net` with the `grade.training` section."""
    pretrain = 1 if grade_method(net.method).protocol == "dcca_pretrain" else 0
    warmup = max(warmup, 1)  # the first iteration's time also holds the model's construction
    config = GradeTrainConfig.from_dict(section, iterations=warmup + steps, batch_size=batch_size,
                                        dcca_pretrain_iterations=pretrain, precision=dtype_name(precision, device),
                                        device=device.type, checkpoint_every=0, log_every=1)
    # DCCA's correlation batches hold one sample of every training patient: enough patients for its check
    sample_patient = np.repeat(np.arange(max(batch_size, 4 * config.dcca_dim)), 2)
    samples = net.samples(len(sample_patient), device)
    targets = torch.as_tensor(sample_patient % 2, device=device)
    stamps: list[float] = []

    def progress(_: str) -> None:  # called after every iteration (log_every=1)
        synchronize(device)
        stamps.append(time.perf_counter())

    model, _ = train_model(net.method, net.dim, samples, targets, sample_patient, config, progress, device=device)
    seconds = (stamps[-1] - stamps[pretrain + warmup - 1]) / (steps * batch_size)
    return sum(p.numel() for p in model.parameters()), seconds


# ---------------------------------------------------------------- running and reporting


def run_one(measure: Callable[[], tuple[int, float]], m: Measurement, device: torch.device) -> None:
    """Fill `m` from `measure()`: a failure is recorded in it, and the run goes on with the next network."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        m.params, m.seconds_per_sample = measure()
    except Exception as err:  # noqa: BLE001 - one network's failure must not hide the others'
        m.error = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
    if device.type == "cuda":
        m.peak_bytes = torch.cuda.max_memory_allocated(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds < 100 * 3600 else f"{seconds / 86400:.1f} d"


def row(m: Measurement) -> str:
    peak = "-" if m.peak_bytes is None else f"{m.peak_bytes / 2**20:.0f}"
    if m.error is not None:
        return f"{m.name:18} {m.params:>11,} {m.label:13} {m.batch:>5} {'FAILED':>10} {peak:>13}  {m.error}"
    return (f"{m.name:18} {m.params:>11,} {m.label:13} {m.batch:>5} {1 / m.seconds_per_sample:10.2f} "
            f"{peak:>13} {m.samples:14.3g} {duration(m.projected_seconds):>12}")


def print_projection(measurements: list[Measurement], device: torch.device, config_name: str) -> None:
    print(f"\nprojected wall time of {config_name}'s training, all networks above (training only; the jobs are "
          "independent, one GPU each, so ideal scaling: total / GPUs):")
    for label in dict.fromkeys(m.label for m in measurements):
        own = [m for m in measurements if m.label == label]
        failed = sum(m.error is not None for m in own)
        total = sum(m.projected_seconds for m in own if m.error is None)
        per_count = " | ".join(f"{n} GPU{'s' if n > 1 else ' '} {duration(total / n):>9}" for n in GPU_COUNTS)
        print(f"  {label:13} {per_count}{f'  (incomplete: {failed} network(s) failed)' if failed else ''}")
    if device.type != "cuda":
        print("  (measured on the CPU: this CPU's times, divided as if it were several; run it on the GPU machine)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PAPER_CONFIG,
                        help="merged over config.yaml (default: config/paper.yaml)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per network (default: 5)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps before them (default: 1 on a GPU, 0 on the CPU)")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=None,
                        help="default: fp32 and mixed on a GPU, fp32 on the CPU")
    parser.add_argument("--only", choices=("mvi", "grade"), default=None, help="one experiment's networks only")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="both experiments' batch size, grading's at least 2 (default: the configuration's; "
                             f"on the CPU at most {CPU_BATCH['mvi']} for MVI and {CPU_BATCH['grade']} for grading)")
    parser.add_argument("--crop", type=int, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help="MVI crop shape (default: the configuration's roi.crop_shape_xyz)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads (default: torch's choice; 1 where other jobs share the cores)")
    args = parser.parse_args(argv)
    if args.steps < 1 or (args.warmup is not None and args.warmup < 0):
        parser.error("--steps must be >= 1 and --warmup >= 0")
    if (args.batch_size is not None and args.batch_size < 1) or (args.threads is not None and args.threads < 1):
        parser.error("--batch-size and --threads must be >= 1")
    return args


def batch_sizes(config: dict, batch_size: int | None, device: torch.device) -> dict[str, int]:
    """Per experiment: `--batch-size`, else the configuration's, cut to CPU_BATCH on the CPU."""
    sizes = {}
    for experiment in ("mvi", "grade"):
        configured = config[experiment]["training"]["batch_size"]
        sizes[experiment] = batch_size or (configured if device.type == "cuda"
                                           else min(configured, CPU_BATCH[experiment]))
    sizes["grade"] = max(sizes["grade"], 2)  # GradeTrainConfig's least (BatchNorm, DCCA covariances)
    return sizes


def print_header(args: argparse.Namespace, config: dict, device: torch.device, batch: dict[str, int],
                 warmup: int) -> None:
    z, y, x = crop_shape_zyx(config)
    shown = args.config.resolve().relative_to(REPO) if args.config.resolve().is_relative_to(REPO) else args.config
    print(f"gpu_smoke: {shown} over config.yaml; device {describe_device(device)}; torch {torch.__version__} "
          f"(CUDA {torch.version.cuda or 'none'})")
    print(f"MVI crop {x} x {y} x {z} (x, y, z), width {config['mvi']['model']['width']}, batch {batch['mvi']} "
          f"(configured {config['mvi']['training']['batch_size']}); grading batch {batch['grade']} (configured "
          f"{config['grade']['training']['batch_size']}); {warmup} untimed + {args.steps} timed step(s) a network")
    if device.type != "cuda":
        print("on the CPU the batch sizes are cut to keep this a quick check: samples/s and the projection are "
              "this CPU's, at these batch sizes")
    print("projected: seconds per sample x the samples the network trains on in the configuration (train samples)")
    print(f"\n{'network':18} {'params':>11} {'precision':13} {'batch':>5} {'samples/s':>10} {'peak GPU MiB':>13} "
          f"{'train samples':>14} {'projected':>12}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        config = read_config(args.config)  # config.yaml with it merged over, as --configfile
        device = resolve_device(args.device, log=lambda _: None)
    except ConfigError as err:
        print(f"gpu_smoke: {err}", file=sys.stderr)
        return 1
    if args.crop is not None:
        config["roi"]["crop_shape_xyz"] = list(args.crop)
    precisions = args.precision or (["fp32", "mixed"] if device.type == "cuda" else ["fp32"])
    if device.type != "cuda" and "fp16" in precisions:
        print("gpu_smoke: fp16 needs a CUDA device (gradient scaling); on the CPU use fp32 or bf16", file=sys.stderr)
        return 1
    warmup = args.warmup if args.warmup is not None else (1 if device.type == "cuda" else 0)
    batch = batch_sizes(config, args.batch_size, device)
    print_header(args, config, device, batch, warmup)

    networks: list[MviNetwork | GradeNetwork] = []
    if args.only in (None, "mvi"):
        networks += mvi_networks(config)
    if args.only in (None, "grade"):
        networks += grade_networks(config)
    measurements = []
    for net in networks:
        for precision in precisions:
            label = precision_label(precision, device)
            if isinstance(net, MviNetwork):
                m = Measurement(net.name, label, batch["mvi"], mvi_training_samples(config, net))
                measure = partial(measure_mvi, net, precision, m.batch, device, steps=args.steps, warmup=warmup)
            else:
                m = Measurement(net.name, label, batch["grade"], grade_training_samples(config))
                measure = partial(measure_grade, net, precision, m.batch, device, section=config["grade"]["training"],
                                  steps=args.steps, warmup=warmup)
            run_one(measure, m, device)
            measurements.append(m)
            print(row(m), flush=True)

    print_projection(measurements, device, args.config.name)
    failed = [m for m in measurements if m.error is not None]
    if failed:
        print(f"\n{len(failed)} network(s) FAILED:", file=sys.stderr)
        for m in failed:
            print(f"  {m.name} ({m.label}): {m.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
