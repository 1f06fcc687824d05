"""Training throughput of the real MVI training loop against a bare loop, and peak memory of a job.

    python benchmarks/bench_training.py [--threads 1] [--epochs 3]

Reports, for the default configuration's student (config.yaml: crop shape, width, feature_dim):
- samples/s of `cmdnet.mvi.training.loop.fit` (augmentation, focal loss, per-epoch validation and checkpoint)
  and of a bare forward/backward/Adam-step loop over the same model, batch size and random tensors, and their
  ratio (target: at least 0.85);
- the same with channels-last 3D memory format and with bfloat16 autocast;
- a learning check of each variant: the real loop on a learnable task (the label shifts the image mean), its
  validation macro AUC and the share of the most-predicted class (1.00 = collapsed to one class);
- the peak resident memory of a complete default-size training job in a fresh process (target: under 2 GiB).
Timings are medians of repeats in one run; compare the ratios, not the absolute numbers, on a noisy machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cmdnet.mvi.losses import FocalLoss  # noqa: E402
from cmdnet.mvi.models import build_model  # noqa: E402
from cmdnet.mvi.training.data import FoldArrays  # noqa: E402
from cmdnet.mvi.training.loop import TrainConfig, fit, predict_probs  # noqa: E402
from cmdnet.mvi.losses import TermContext  # noqa: E402
from cmdnet.mvi.objective import SupervisedTask, build_objective  # noqa: E402


def default_setup():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    x, y, z = config["roi"]["crop_shape_xyz"]
    model_cfg = config["mvi"]["model"]
    return (z, y, x), model_cfg, config["mvi"]["training"]


def make_model(shape, model_cfg):
    torch.manual_seed(0)
    return build_model("student", in_shape_zyx=shape, width=model_cfg["width"], feature_dim=model_cfg["feature_dim"],
                       norm=model_cfg["norm"], ca_kwargs=model_cfg["cross_attention"])


VARIANTS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def bare_loop(shape, model_cfg, n, batch, epochs, channels_last, precision="fp32"):
    model = make_model(shape, model_cfg)
    images = torch.randn(n, 2, *shape)
    labels = torch.randint(0, 3, (n,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = FocalLoss(gamma=2.0)
    model.train()
    tic = time.perf_counter()
    for _ in range(epochs):
        for start in range(0, n, batch):
            x = images[start:start + batch]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(model(x).logits.float(), labels[start:start + batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return n * epochs / (time.perf_counter() - tic)


def _arrays(shape, n, n_val, signal):
    rng = np.random.default_rng(0)
    ids = [f"P{i}" for i in range(n + n_val)]
    labels = np.arange(n + n_val) % 3
    images = rng.normal(size=(n + n_val, 2, *shape)).astype(np.float32)
    images += signal * labels[:, None, None, None, None]
    return FoldArrays(images[:n], labels[:n], ids[:n]), FoldArrays(images[n:], labels[n:], ids[n:])


def focal_objective(cfg, labels):
    """The supervised objective of the workflow (focal loss with class-balanced alpha)."""
    return build_objective({"focal": {"weight": 1.0}}, TermContext(labels, 3, cfg), "bench")


def real_loop(shape, model_cfg, train_cfg, n, epochs, channels_last, precision="fp32"):
    train, val = _arrays(shape, n, max(6, n // 4), signal=0.0)
    model = make_model(shape, model_cfg)
    cfg = TrainConfig.from_dict({**train_cfg, "epochs": epochs, "channels_last": channels_last,
                                 "precision": precision})
    task = SupervisedTask(model, focal_objective(cfg, train.labels), uses_clinical=False)
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        fit(task, train, val, cfg, seed=0, checkpoint_path=Path(tmp) / "ckpt.pt", progress=lambda _: None)
        return n * epochs / (time.perf_counter() - tic)


def learning_check(shape, model_cfg, train_cfg, channels_last, precision, n=96, epochs=8, signal=0.15):
    """Validation macro AUC after training on a task a working loop learns, and the top predicted class share."""
    from cmdnet.evaluation.stats.metrics import macro_ovo_auc

    train, val = _arrays(shape, n, 48, signal=signal)
    model = make_model(shape, model_cfg)
    cfg = TrainConfig.from_dict({**train_cfg, "epochs": epochs, "channels_last": channels_last,
                                 "precision": precision})
    task = SupervisedTask(model, focal_objective(cfg, train.labels), uses_clinical=False)
    result = fit(task, train, val, cfg, seed=0, progress=lambda _: None)
    task.modules.load_state_dict(result.best_state)
    probs = predict_probs(task, val.tensors(torch.device("cpu")))
    top_share = np.bincount(probs.argmax(1), minlength=3).max() / len(probs)
    return macro_ovo_auc(val.labels, probs), top_share


PEAK_JOB = """
import resource, sys, tempfile
from pathlib import Path
sys.path.insert(0, {repo!r})
import numpy as np, pandas as pd, torch
torch.set_num_threads({threads})
from cmdnet.config import deep_merge, default_config
from cmdnet.data.folds import make_partitions
from cmdnet.mvi.settings import job_settings
from cmdnet.mvi.training.fold import MviData, train_method_fold
shape = {shape!r}
n = 80
rng = np.random.default_rng(0)
ids = [f"P{{i:03d}}" for i in range(n)]
labels = pd.Series(np.arange(n) % 3, index=ids)
data = MviData(rng.normal(size=(n, 2, *shape)).astype(np.float32), ("PRE", "HBP"), ids, labels)
with tempfile.TemporaryDirectory() as tmp:
    settings = job_settings(deep_merge(default_config(), {{"mvi": {{"model": {model!r}, "training": {train!r}}}}}),
                            "s_pre_hbp")
    train_method_fold(data, make_partitions(labels, 5, 1, 0.2, 0), "s_pre_hbp", 0, 0, settings,
                      out_model=Path(tmp) / "m.pt", out_history=Path(tmp) / "h.csv", progress=lambda _: None)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_memory_mb(shape, model_cfg, train_cfg, threads):
    code = PEAK_JOB.format(repo=str(REPO), threads=threads, shape=tuple(shape), model=model_cfg,
                           train={**train_cfg, "epochs": 2})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape, model_cfg, train_cfg = default_setup()
    batch = train_cfg["batch_size"]
    print(f"student, input (z, y, x) {shape}, width {model_cfg['width']}, batch {batch}, {args.samples} samples, "
          f"{args.epochs} epochs, {args.threads} thread(s), torch {torch.__version__}")
    reference = None
    for precision, channels_last in VARIANTS:
        bare, real = [], []
        for _ in range(args.repeats):
            bare.append(bare_loop(shape, model_cfg, args.samples, batch, args.epochs, channels_last, precision))
            real.append(real_loop(shape, model_cfg, train_cfg, args.samples, args.epochs, channels_last, precision))
        b, r = statistics.median(bare), statistics.median(real)
        reference = reference or r
        auc, top_share = learning_check(shape, model_cfg, train_cfg, channels_last, precision)
        print(f"{precision} channels_last={channels_last!s:5}  bare {b:6.1f} samples/s  real {r:6.1f} samples/s  "
              f"ratio {r / b:.2f} (target >= 0.85)  speed vs fp32 {r / reference:.2f}x  "
              f"learning: val AUC {auc:.2f}, top class share {top_share:.2f}")
    peak = peak_memory_mb(shape, model_cfg, train_cfg, args.threads)
    print(f"peak resident memory of a default training job (80 patients, fresh process): {peak:.0f} MiB "
          f"(target < 2048 MiB)")
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
