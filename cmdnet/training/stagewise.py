"""Stage-wise training (Concat_2S, Zhou et al. 2019): each stage of a network trained after the previous one.

A network trained this way lists its stages (`model.training_stages()`, `cmdnet.models.TrainingStage`): the
modules each stage trains and the logits it is supervised on. `fit_stagewise` trains the stages in order, each
one with the shared epoch loop (`loop.fit`), so every stage keeps the loop's guarantees:
- selection: each stage is selected at its own best epoch on the inner validation split of the training
  folds (`cfg.selection_metric` of that stage's logits), never on the test fold;
- frozen earlier stages: while a stage trains, every parameter outside its modules has `requires_grad`
  off (so no gradient reaches it and the optimiser does not hold it) and every module outside it is in eval
  mode (BatchNorm statistics stay those of the epoch its own stage selected);
- exact resumption: each stage checkpoints every epoch to its own file next to `checkpoint_path`
  (`<stem>.<stage><suffix>`); a finished stage's file holds its selected state, so a killed run replays the
  finished stages from their files, resumes the interrupted one, and ends with the same weights and history
  as an uninterrupted run. The stage files are removed once every stage has finished.

Stage k is trained with the loop seed `seed + k` and the global torch seed reset to `seed + k` before it
(so a stage's randomness does not depend on whether the earlier stages ran or were replayed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from ..losses import FocalLoss
from ..models.stages import TrainingStage
from .data import FoldArrays
from .loop import FitResult, TrainConfig, fit


def training_stages(model: nn.Module) -> list[TrainingStage]:
    """The model's stages, `[]` for a model trained in one run."""
    stages = getattr(model, "training_stages", None)
    return list(stages()) if callable(stages) else []


def is_stagewise(model: nn.Module) -> bool:
    return bool(training_stages(model))


class StageTask:
    """The loop's task for one stage: the stage's logits, the focal loss, the stage's parameters only."""

    def __init__(self, model: nn.Module, stage: TrainingStage, focal: FocalLoss):
        self.model, self.stage, self.focal = model, stage, focal
        self.modules = nn.ModuleDict({"model": model})  # the whole network is checkpointed and selected
        self._trained = nn.ModuleList(stage.modules)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self._trained.parameters() if p.requires_grad]

    def train_mode(self) -> None:
        self.model.eval()
        self._trained.train()

    def loss(self, batch):
        focal = self.focal(self.stage.logits(batch["images"]), batch["labels"])
        return focal, {"focal": focal.item(), "loss": focal.item()}

    def logits(self, batch):
        return self.stage.logits(batch["images"])


def stage_checkpoint_path(checkpoint_path: Path | None, stage: str) -> Path | None:
    if checkpoint_path is None:
        return None
    path = Path(checkpoint_path)
    return path.with_name(f"{path.stem}.{stage}{path.suffix}")


@contextmanager
def only_stage_trainable(model: nn.Module, stage: TrainingStage) -> Iterator[None]:
    """Within the block, `requires_grad` is on for the stage's parameters only (restored afterwards)."""
    trained = {id(p) for m in stage.modules for p in m.parameters()}
    if not trained:
        raise ValueError(f"stage {stage.name!r} has no parameters to train")
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trained)
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])


def fit_stage(model: nn.Module, stage: TrainingStage, train: FoldArrays, val: FoldArrays, cfg: TrainConfig,
              focal: FocalLoss, *, seed: int, checkpoint_path: Path | None = None, fingerprint: str = "",
              progress: Callable[[str], None] = print, label: str = "",
              stop_after_epoch: int | None = None) -> FitResult:
    """Train one stage with every parameter outside it frozen; the model ends at the stage's selected epoch."""
    with only_stage_trainable(model, stage):
        torch.manual_seed(seed)
        return fit(StageTask(model, stage, focal), train, val, cfg, seed=seed, checkpoint_path=checkpoint_path,
                   fingerprint=f"{fingerprint}:{stage.name}", progress=progress, label=f"{label} {stage.name}",
                   stop_after_epoch=stop_after_epoch)


def fit_stagewise(model: nn.Module, train: FoldArrays, val: FoldArrays, cfg: TrainConfig, focal: FocalLoss, *,
                  seed: int, checkpoint_path: Path | None = None, fingerprint: str = "",
                  progress: Callable[[str], None] = print, label: str = "",
                  stop_after: tuple[str, int] | None = None) -> FitResult:
    """Train `model.training_stages()` in order (module docstring); the model ends at the last stage's selection.

    Returns the stages' histories stacked, with a `stage` column and a per-stage `selected` column, and the
    last stage's selected epoch. `stop_after=(stage, epoch)` ends the run there as a kill would (tests).
    """
    stages = training_stages(model)
    if not stages:
        raise ValueError(f"{type(model).__name__} has no training stages; train it with loop.fit")
    histories = []
    for k, stage in enumerate(stages):
        stop = stop_after[1] if stop_after is not None and stop_after[0] == stage.name else None
        result = fit_stage(model, stage, train, val, cfg, focal, seed=seed + k,
                           checkpoint_path=stage_checkpoint_path(checkpoint_path, stage.name),
                           fingerprint=fingerprint, progress=progress, label=label, stop_after_epoch=stop)
        history = result.history.assign(selected=result.history["epoch"] == result.best_epoch)
        history.insert(0, "stage", stage.name)
        histories.append(history)
    for stage in stages:
        path = stage_checkpoint_path(checkpoint_path, stage.name)
        if path is not None:
            path.unlink(missing_ok=True)  # done: a later run must start afresh
    return FitResult(pd.concat(histories, ignore_index=True), result.best_epoch, result.best_state)
