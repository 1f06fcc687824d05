"""Estimated cost of a configuration (default: config/paper.yaml) from FLOPs counted on the real models.

    python benchmarks/estimate_paper_cost.py [--config config/paper.yaml] [--gflops-cpu 150] [--tflops-gpu 100]

Counts the training FLOPs per sample (forward + backward) of every MVI network the configuration trains
(teachers and methods) and of the patch models with torch's FlopCounterMode, multiplies by the samples the
configuration sees (training patients x epochs x folds; patches x iterations x repeats x folds), and prints
the total with the time it would take at a sustained throughput you give (defaults: a CPU like this one at
150 GFLOP/s, and a GPU at 100 TFLOP/s sustained in fp32/tf32; bf16 on an H100 sustains more).
Validation and prediction add about a third of one epoch each and are left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cmdnet.grade.networks import build_grade_model  # noqa: E402
from cmdnet.mvi.methods import METHODS, TEACHERS, teachers_needed  # noqa: E402
from cmdnet.mvi.models import build_model  # noqa: E402
from cmdnet.data.synth import SynthParams  # noqa: E402
from cmdnet.data.synth.cohort import exact_counts  # noqa: E402


def merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def train_flops(model: torch.nn.Module, inputs: tuple) -> int:
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(*inputs)
        out.logits.sum().backward()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "paper.yaml")
    parser.add_argument("--gflops-cpu", type=float, default=150.0)
    parser.add_argument("--tflops-gpu", type=float, default=100.0)
    parser.add_argument("--n-clinical", type=int, default=60, help="clinical features after one-hot/indicators")
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg = merged(base, yaml.safe_load(args.config.read_text()) or {}) if args.config.name != "config.yaml" else base
    x, y, z = cfg["roi"]["crop_shape_xyz"]
    shape = (z, y, x)
    model_cfg = cfg["mvi"]["model"]
    n = cfg["synthetic"]["n_patients"]
    k = cfg["folds"]["mvi_k"]
    train_per_fold = n * (k - 1) / k * (1 - cfg["folds"]["inner_validation_fraction"])
    epochs = cfg["mvi"]["training"]["epochs"]
    common = dict(in_shape_zyx=shape, width=model_cfg["width"], feature_dim=model_cfg["feature_dim"],
                  norm=model_cfg["norm"])
    total = 0.0
    print(f"configuration {args.config.name}: {n} patients, crop {shape} (z, y, x), width {model_cfg['width']}, "
          f"{epochs} epochs, {k} folds")
    print(f"{'model':16} {'GFLOP/sample':>13} {'PFLOP total':>12}")
    for name in teachers_needed(cfg["mvi"]["methods"]):
        spec = TEACHERS[name]
        model = build_model("teacher", n_clinical=args.n_clinical, phases=list(spec.phases), use_ca=spec.use_ca,
                            ca_kwargs=model_cfg["cross_attention"], **common)
        flops = train_flops(model, (torch.randn(1, len(spec.phases), *shape), torch.randn(1, args.n_clinical)))
        job = flops * train_per_fold * epochs * k
        total += job
        print(f"{name:16} {flops / 1e9:13.1f} {job / 1e15:12.2f}")
    for name in cfg["mvi"]["methods"]:
        spec = METHODS[name]
        kwargs = dict(common, phases=list(spec.phases))
        if spec.model == "student":
            kwargs.update(use_ca=spec.use_ca, ca_kwargs=model_cfg["cross_attention"])
        flops = train_flops(build_model(spec.model, **kwargs), (torch.randn(1, len(spec.phases), *shape),))
        if spec.teacher is not None:  # the frozen teacher's forward pass: about a third of its training FLOPs
            flops += flops / 3
        job = flops * train_per_fold * epochs * k
        total += job
        print(f"{name:16} {flops / 1e9:13.1f} {job / 1e15:12.2f}")
    grade = cfg["grade"]["training"]
    keys = ("local_channels", "nonlocal_channels", "nonlocal_inter_channels", "nonlocal_subsample", "common_dim",
            "dcca_dim")
    grade_kwargs = {key: grade[key] for key in keys if key in grade}
    samples = grade["iterations"] * grade["batch_size"] * cfg["folds"]["grade_repeats"] * cfg["folds"]["grade_k"]
    for dim in cfg["grade"]["dims"]:
        for method in cfg["grade"]["methods"]:
            model = build_grade_model(method, dim, **grade_kwargs)
            x_in = torch.randn(2, 1, 16, 16, 16) if dim == "3d" else torch.randn(2, 1, 16, 16)
            model.train()
            with FlopCounterMode(display=False) as counter:
                model(x_in).logits.sum().backward()
            flops = counter.get_total_flops() / 2
            total += flops * samples
            print(f"{method + '/' + dim:16} {flops / 1e9:13.3f} {flops * samples / 1e15:12.3f}")
    print(f"\ntotal training: {total:.3g} FLOP")
    print(f"  at {args.gflops_cpu:.0f} GFLOP/s (a 2-core CPU like this one): {total / args.gflops_cpu / 1e9 / 3600:.1f} h")
    print(f"  at {args.tflops_gpu:.0f} TFLOP/s sustained (one GPU): {total / args.tflops_gpu / 1e12 / 3600:.2f} h")
    counts = exact_counts(SynthParams().mvi_prevalence, n)
    print(f"(cohort of {n}: M0/M1/M2 = {counts}; clinical features assumed {args.n_clinical})")


if __name__ == "__main__":
    main()
