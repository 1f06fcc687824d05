"""Estimated cost of a configuration (default: config/paper.yaml) from FLOPs counted on the real models.

    python benchmarks/estimate_paper_cost.py [--config config/paper.yaml] [--gflops-cpu 150] [--tflops-gpu 100]

Counts the training FLOPs per sample (forward + backward) of every MVI network the configuration trains
(teachers and methods) and of the patch models with torch's FlopCounterMode, multiplies by the samples the
configuration trains each on (`configured_networks.py`: training patients x epochs x folds x repeats; batch x
iterations x folds x repeats), and prints
the total with the time it would take at a sustained throughput you give (defaults: a CPU like this one at
150 GFLOP/s, and a GPU at 100 TFLOP/s sustained in fp32/tf32; bf16 on an H100 sustains more).
Validation and prediction add about a third of one epoch each and are left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from configured_networks import (
    N_CLINICAL,
    PAPER_CONFIG,
    grade_networks,
    grade_training_samples,
    mvi_fit_patients,
    mvi_networks,
    mvi_training_samples,
)
from torch.utils.flop_counter import FlopCounterMode

from cmdnet.config import read_config
from cmdnet.data.synth import SynthParams
from cmdnet.data.synth.cohort import exact_counts


def train_flops(model: torch.nn.Module, inputs: tuple) -> int:
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(*inputs)
        out.logits.sum().backward()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=PAPER_CONFIG)
    parser.add_argument("--gflops-cpu", type=float, default=150.0)
    parser.add_argument("--tflops-gpu", type=float, default=100.0)
    parser.add_argument("--n-clinical", type=int, default=N_CLINICAL,
                        help="clinical features after one-hot/indicators")
    args = parser.parse_args()
    cfg = read_config(args.config)  # config.yaml with it merged over, as --configfile
    networks = mvi_networks(cfg, n_clinical=args.n_clinical)
    model_cfg, folds = cfg["mvi"]["model"], cfg["folds"]
    n = cfg["synthetic"]["n_patients"]
    total = 0.0
    print(f"configuration {args.config.name}: {n} patients ({mvi_fit_patients(cfg):.0f} fit per MVI fold), crop "
          f"{tuple(networks[0].kwargs['in_shape_zyx'])} (z, y, x), width {model_cfg['width']}, "
          f"{cfg['mvi']['training']['epochs']} epochs, {folds['mvi_repeats']} x {folds['mvi_k']} folds")
    print(f"{'model':16} {'GFLOP/sample':>13} {'PFLOP total':>12}")
    for net in networks:
        flops = train_flops(net.build(), net.forward_inputs(net.batch(1)))
        if net.teacher is not None:  # the frozen teacher's forward pass: about a third of its training FLOPs
            flops += flops / 3
        job = flops * mvi_training_samples(cfg, net)
        total += job
        print(f"{net.name:16} {flops / 1e9:13.1f} {job / 1e15:12.2f}")
    samples = grade_training_samples(cfg)
    for net in grade_networks(cfg):
        model = net.build().train()
        with FlopCounterMode(display=False) as counter:
            model(net.samples(2)).logits.sum().backward()
        flops = counter.get_total_flops() / 2
        total += flops * samples
        print(f"{net.name:16} {flops / 1e9:13.3f} {flops * samples / 1e15:12.3f}")
    print(f"\ntotal training: {total:.3g} FLOP")
    print(f"  at {args.gflops_cpu:.0f} GFLOP/s (a 2-core CPU like this one): {total / args.gflops_cpu / 1e9 / 3600:.1f} h")
    print(f"  at {args.tflops_gpu:.0f} TFLOP/s sustained (one GPU): {total / args.tflops_gpu / 1e12 / 3600:.2f} h")
    counts = exact_counts(SynthParams().mvi_prevalence, n)
    print(f"(cohort of {n}: M0/M1/M2 = {counts}; clinical features assumed {args.n_clinical})")


if __name__ == "__main__":
    main()
