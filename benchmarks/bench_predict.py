"""Latency and peak memory of `cmdnet predict` for one patient: DICOM directories + masks -> probabilities.

    python benchmarks/bench_predict.py [--bundle DIR] [--repeats 5] [--threads 2] [--members 5]

Without `--bundle`, a bundle of `--members` untrained students of the default config (`config.yaml`: width,
feature_dim, cross-attention, crop shape) is written to a temporary directory; latency does not depend on
the weights. The patient is a synthetic one (`cmdnet.data.synth`, 64-96 pixel matrix, 24-40 slices per phase).
Prints the median of `--repeats` runs of `predict_case` split into its steps (conversion, ROI, inference,
the whole call), the bundle loading time, the whole CLI call in a fresh process (imports included), and peak
memory: the resident set size of this process (`ru_maxrss`) and of the CLI process (its `VmHWM`). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from cmdnet import __version__
from cmdnet.product.bundle import load_bundle, write_bundle
from cmdnet.mvi.models import build_model
from cmdnet.product.predict import PhaseInput, predict_case, prepare_case
from cmdnet.data.synth import SynthParams, write_cohort
from cmdnet.mvi.training.fold import model_kwargs
from timing import median_seconds

REPO = Path(__file__).resolve().parents[1]
_CLI_WITH_PEAK = ("import sys; from cmdnet.cli import main; rc = main(sys.argv[1:]); "
                  "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr); "
                  "sys.exit(rc)")


def untrained_bundle(out: Path, config: dict, members: int) -> Path:
    """A bundle of `members` freshly initialised students in the model-file format of cmdnet.mvi.training.fold."""
    in_shape = list(config["roi"]["crop_shape_xyz"])[::-1]
    kwargs = model_kwargs(config["mvi"]["model"], ("PRE", "HBP"), in_shape, use_ca=True, cmdnet_module=True)
    paths = []
    for k in range(members):
        torch.manual_seed(k)
        model = build_model("student", **kwargs)
        paths.append(out / f"fold{k}" / "model.pt")
        paths[-1].parent.mkdir(parents=True)
        torch.save({"cmdnet_version": __version__, "builder": "student", "kwargs": kwargs,
                    "state_dict": model.state_dict(), "kind": "method", "name": "ours", "phases": ["PRE", "HBP"],
                    "fold": k, "train_ids": [], "val_ids": [], "best_epoch": 0}, paths[-1])
    write_bundle(out / "bundle", paths, method="ours", roi_cfg=config["roi"])
    return out / "bundle"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="an existing bundle (default: untrained)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--members", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_cohort(tmp / "cohort", SynthParams(n_patients=6, seed=0))
        cohort = tmp / "cohort"
        inputs = {p: PhaseInput(cohort / "dicom" / "SYN001" / p, cohort / "masks" / f"SYN001_{p}.nii.gz")
                  for p in ("PRE", "HBP")}
        bundle_dir = args.bundle or untrained_bundle(tmp / "models", config, args.members)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        load = median_seconds(lambda: load_bundle(bundle_dir), args.repeats)
        bundle = load_bundle(bundle_dir)
        predict_case(bundle, inputs)  # warm-up (first call initialises torch's kernels)
        whole = median_seconds(lambda: predict_case(bundle, inputs), args.repeats)
        work = tmp / "work"
        work.mkdir()
        prepare = median_seconds(lambda: prepare_case(bundle, inputs, work), args.repeats)
        images = prepare_case(bundle, inputs, work).images
        infer = median_seconds(lambda: bundle.predict_proba(images), args.repeats)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        # The child reports its own peak RSS (VmHWM): ru_maxrss of children would count the parent's pages at fork.
        cli = [sys.executable, "-c", _CLI_WITH_PEAK, "predict", "--bundle", str(bundle_dir),
               "--pre", str(inputs["PRE"].dicom_dir), "--pre-mask", str(inputs["PRE"].mask),
               "--hbp", str(inputs["HBP"].dicom_dir), "--hbp-mask", str(inputs["HBP"].mask)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        cli_time = median_seconds(lambda: subprocess.run(cli, check=True, capture_output=True, env=env),
                                  max(1, args.repeats // 2))
        last = subprocess.run(cli, check=True, capture_output=True, env=env, text=True).stderr
        cli_rss = int(last.split("VmHWM:")[1].split()[0])

    print(f"cmdnet {__version__}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{len(bundle.members)} member(s), crop (z, y, x) {tuple(images.shape[2:])}, median of {args.repeats}")
    print(f"  load bundle                      {load * 1e3:8.1f} ms")
    print(f"  conversion + ROI (2 phases)      {prepare * 1e3:8.1f} ms")
    print(f"  inference (all members)          {infer * 1e3:8.1f} ms")
    print(f"  predict_case (DICOM -> probs)    {whole * 1e3:8.1f} ms")
    print(f"  CLI in a fresh process           {cli_time * 1e3:8.1f} ms  (imports and bundle loading included)")
    print(f"  peak RSS this process            {rss_after / 1024:8.1f} MiB (before the runs {rss_before / 1024:.1f})")
    print(f"  peak RSS CLI process             {cli_rss / 1024:8.1f} MiB")


if __name__ == "__main__":
    main()
