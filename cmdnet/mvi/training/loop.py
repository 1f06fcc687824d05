"""The epoch loop shared by every MVI model: batches, augmentation, validation, selection, checkpoints.

What a model learns from is a `Task` (supervised, or distilled from a teacher); the loop only asks it for a
loss on a training batch and for logits on a validation batch. The loop:
- selects the epoch by the inner validation split of the training folds (never the test fold);
- writes a checkpoint after every epoch (atomically) holding everything a resumed run needs to continue
  exactly where it stopped: weights, optimiser, scheduler, random generators, history and the best state;
- is deterministic for a given seed on the CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import pandas as pd
import torch
from cmdnet.atomic import atomic_path
from cmdnet.config import default_field, parse_section
from cmdnet.device import autocast_dtype, conv3d_channels_last, describe_device, resolve_device
from cmdnet.evaluation.stats.metrics import macro_ovo_auc_replicates
from cmdnet.mvi.training.data import Augmentation, FoldArrays


@dataclass(frozen=True)
class TrainConfig:
    """`mvi.training` (config.yaml owns the defaults; the schema documents each key)."""

    epochs: int = default_field("mvi.training.epochs")
    batch_size: int = default_field("mvi.training.batch_size")
    lr: float = default_field("mvi.training.lr")
    weight_decay: float = default_field("mvi.training.weight_decay")
    schedule: str = default_field("mvi.training.schedule")                  # cosine | constant (after warm-up)
    warmup_epochs: int = default_field("mvi.training.warmup_epochs")
    early_stopping_patience: int | None = default_field("mvi.training.early_stopping_patience")
    selection_metric: str = default_field("mvi.training.selection_metric")  # val_auc | val_loss (inner split)
    focal_gamma: float = default_field("mvi.training.focal_gamma")
    focal_alpha: tuple[float, ...] | None = default_field("mvi.training.focal_alpha")
    augmentation: dict = default_field("mvi.training.augmentation")
    channels_last: bool = default_field("mvi.training.channels_last")
    precision: str = default_field("mvi.training.precision")                # fp32 | mixed | bf16 | fp16
    device: str = default_field("mvi.training.device")                      # auto | cpu | cuda

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        cfg = parse_section(cls, d, "mvi.training")
        if cfg.focal_alpha is not None:
            cfg = dataclasses.replace(cfg, focal_alpha=tuple(float(a) for a in cfg.focal_alpha))
        return cfg

    def as_dict(self) -> dict:
        return asdict(self)


class Task(Protocol):
    """What the loop trains: `modules` holds every network whose state is saved (trainable or frozen)."""

    modules: torch.nn.ModuleDict

    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    def train_mode(self) -> None: ...

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]: ...

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...


def _lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(epoch: int) -> float:
        if epoch < cfg.warmup_epochs:
            return (epoch + 1) / (cfg.warmup_epochs + 1)
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        progress = (epoch - cfg.warmup_epochs) / span
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def validation_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Macro one-vs-one AUC (Hand & Till) of the inner validation split; NaN when it lacks a class (selection then
    uses the validation loss). The NumPy implementation, equal to scikit-learn's (tested)."""
    if len(np.unique(labels)) < probs.shape[1]:
        return float("nan")
    return float(macro_ovo_auc_replicates(labels, probs, np.arange(len(labels))[None])[0])


@dataclass
class FitResult:
    history: pd.DataFrame
    best_epoch: int
    best_state: dict
    val_probs: np.ndarray      # the selected epoch's probabilities on the inner validation split


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        # BatchNorm cannot train on one sample: fold the lone sample into the previous batch.
        chunks[-2] = torch.cat([chunks[-2], chunks[-1]])
        chunks.pop()
    return chunks


@torch.no_grad()
def predict_probs(task: Task, data: dict[str, torch.Tensor], batch_size: int = 32) -> np.ndarray:
    for m in task.modules.values():
        m.eval()
    n = data["labels"].shape[0]
    out = []
    for start in range(0, n, batch_size):
        batch = {k: v[start:start + batch_size] for k, v in data.items()}
        out.append(torch.softmax(task.logits(batch).float(), dim=1).cpu())
    return torch.cat(out).numpy()


def fit(task: Task, train: FoldArrays, val: FoldArrays, cfg: TrainConfig, *, seed: int,
        checkpoint_path: Path | None = None, fingerprint: str = "", progress: Callable[[str], None] = print,
        label: str = "", stop_after_epoch: int | None = None) -> FitResult:
    """Train `task` on `train`, select the epoch on `val`; resume from `checkpoint_path` when it matches.

    `fingerprint` identifies the job (config + data); a checkpoint with another fingerprint is ignored, so a
    changed configuration never resumes from a stale run. `stop_after_epoch` ends the run early as a kill
    would (used to test resumption).
    """
    device = resolve_device(cfg.device, log=progress)
    where = describe_device(device)
    amp_dtype = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    task.modules.to(device)
    if cfg.channels_last:
        conv3d_channels_last(task.modules)
    train_t, val_t = train.tensors(device), val.tensors(device)
    if cfg.channels_last:  # once here, not at every validation pass
        val_t["images"] = val_t["images"].contiguous(memory_format=torch.channels_last_3d)
    augment = Augmentation.from_dict(cfg.augmentation)
    generator = torch.Generator().manual_seed(seed + 1)
    optimiser = torch.optim.AdamW(task.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _lr_factor(cfg))
    history: list[dict] = []
    best = {"epoch": -1, "auc": -math.inf, "loss": math.inf, "state": None, "val_probs": None}
    bad_epochs = 0
    start_epoch = 0

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        # On the CPU: RNG states must stay CPU byte tensors; load_state_dict moves the rest to the device.
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if ckpt.get("fingerprint") == fingerprint:
            task.modules.load_state_dict(ckpt["modules"])
            optimiser.load_state_dict(ckpt["optimiser"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            generator.set_state(ckpt["generator"])
            torch.set_rng_state(ckpt["torch_rng"])
            history, best, bad_epochs = ckpt["history"], ckpt["best"], ckpt["bad_epochs"]
            start_epoch = ckpt["epoch"] + 1
            progress(f"{label} resuming after epoch {start_epoch} from {checkpoint_path}")
            if cfg.early_stopping_patience is not None and bad_epochs >= cfg.early_stopping_patience:
                start_epoch = cfg.epochs  # the killed run had already decided to stop here
        else:
            progress(f"{label} ignoring checkpoint {checkpoint_path} of another configuration")

    for epoch in range(start_epoch, cfg.epochs):
        tic = time.perf_counter()
        task.train_mode()
        sums: dict[str, float] = {}
        n_seen = 0
        for rows in _batches(len(train), cfg.batch_size, generator):
            batch = {k: v[rows] for k, v in train_t.items()}
            batch["images"] = augment(batch["images"], generator)
            if cfg.channels_last:
                batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last_3d)
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                loss, terms = task.loss(batch)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * len(rows)
            n_seen += len(rows)
        scheduler.step()

        probs = predict_probs(task, val_t)
        val_labels = val.labels
        eps = 1e-7
        val_loss = float(-np.mean(np.log(probs[np.arange(len(val_labels)), val_labels] + eps)))
        val_auc = validation_auc(val_labels, probs)
        val_acc = float(np.mean(probs.argmax(1) == val_labels))
        row = {"epoch": epoch + 1, **{f"train_{k}": v / n_seen for k, v in sums.items()},
               "val_loss": val_loss, "val_auc": val_auc, "val_accuracy": val_acc,
               "lr": optimiser.param_groups[0]["lr"], "seconds": time.perf_counter() - tic}
        history.append(row)

        improved = _is_better(cfg.selection_metric, val_auc, val_loss, best)
        if improved:
            best = {"epoch": epoch + 1, "auc": val_auc, "loss": val_loss,
                    "state": copy.deepcopy(task.modules.state_dict()), "val_probs": probs}
            bad_epochs = 0
        else:
            bad_epochs += 1
        terms_text = " ".join(f"{k} {v / n_seen:.3f}" for k, v in sums.items())
        progress(f"{label} [{where}] epoch {epoch + 1}/{cfg.epochs} {terms_text} | val_loss {val_loss:.3f} "
                 f"val_auc {val_auc:.3f} val_acc {val_acc:.3f}{' *' if improved else ''} ({row['seconds']:.1f} s)")

        if checkpoint_path is not None:
            state = {"fingerprint": fingerprint, "epoch": epoch, "modules": task.modules.state_dict(),
                     "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict(),
                     "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                     "history": history, "best": best, "bad_epochs": bad_epochs}
            with atomic_path(checkpoint_path) as tmp:
                torch.save(state, tmp)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            raise InterruptedError(f"stopped after epoch {epoch + 1} as asked")
        if cfg.early_stopping_patience is not None and bad_epochs >= cfg.early_stopping_patience:
            progress(f"{label} early stop: no improvement in {bad_epochs} epochs")
            break

    task.modules.load_state_dict(best["state"])
    return FitResult(pd.DataFrame(history), best["epoch"], best["state"], best["val_probs"])


def _is_better(metric: str, auc: float, loss: float, best: dict) -> bool:
    if best["state"] is None:
        return True
    if metric == "val_auc" and not math.isnan(auc):
        best_auc = best["auc"] if not math.isnan(best["auc"]) else -math.inf
        return auc > best_auc or (auc == best_auc and loss < best["loss"])
    return loss < best["loss"]
