"""Stage-wise training (Concat_2S, Zhou et al. 2019): each stage of a network trained after the previous one.

A network trained this way lists its stages (`model.training_stages()`, `cmdnet.mvi.models.TrainingStage`): the
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

Each stage is trained with the loop seed `derive_seed(seed, stage name)`, to which the global torch seed is also
reset before it (so a stage's randomness does not depend on whether the earlier stages ran or were replayed). The
method's objective is applied to each stage's logits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from cmdnet.mvi.losses.terms import Step
from cmdnet.mvi.models.output import ModelOutput
from cmdnet.mvi.objective import SupervisedTask, WeightedSum
from cmdnet.mvi.models.stages import TrainingStage
from cmdnet.mvi.training.data import FoldArrays
from cmdnet.mvi.training.loop import FitResult, TrainConfig, fit
from cmdnet.seeds import derive_seed


def training_stages(model: nn.Module) -> list[TrainingStage]:
    """The model's stages, `[]` for a model trained in one run."""
    stages = getattr(model, "training_stages", None)
    return list(stages()) if callable(stages) else []


def is_stagewise(model: nn.Module) -> bool:
    return bool(training_stages(model))


class StageTask:
    """The loop's task for one stage: the stage's logits, the method's objective, the stage's parameters only."""

    def __init__(self, model: nn.Module, stage: TrainingStage, objective: WeightedSum):
        self.model, self.stage, self.objective = model, stage, objective
        # the whole network is checkpointed and selected
        self.modules = nn.ModuleDict({"model": model, "objective": objective})
        self._trained = nn.ModuleList(stage.modules)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self._trained.parameters() if p.requires_grad]

    def train_mode(self) -> None:
        self.model.eval()
        self._trained.train()

    def loss(self, batch):
        total, parts = self.objective(Step(batch["labels"], ModelOutput(self.stage.logits(batch["images"]))))
        return total, {**parts, "loss": total.item()}

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
              objective: WeightedSum, *, seed: int, checkpoint_path: Path | None = None, fingerprint: str = "",
              progress: Callable[[str], None] = print, label: str = "",
              stop_after_epoch: int | None = None) -> FitResult:
    """Train one stage with every parameter outside it frozen; the model ends at the stage's selected epoch."""
    with only_stage_trainable(model, stage):
        torch.manual_seed(seed)
        return fit(StageTask(model, stage, objective), train, val, cfg, seed=seed, checkpoint_path=checkpoint_path,
                   fingerprint=f"{fingerprint}:{stage.name}", progress=progress, label=f"{label} {stage.name}",
                   stop_after_epoch=stop_after_epoch)


def fit_stagewise(task: SupervisedTask, train: FoldArrays, val: FoldArrays, cfg: TrainConfig, *, seed: int, checkpoint_path: Path | None = None, fingerprint: str = "",
                  progress: Callable[[str], None] = print, label: str = "",
                  stop_after: tuple[str, int] | None = None) -> FitResult:
    """Train `task.model.training_stages()` in order (module docstring), each with `task.objective`; the model ends
    at the last stage's selection.

    Returns the stages' histories stacked, with a `stage` column and a per-stage `selected` column, and the
    last stage's selected epoch. `stop_after=(stage, epoch)` ends the run there as a kill would (tests).
    """
    model = task.model
    stages = training_stages(model)
    if not stages:
        raise ValueError(f"{type(model).__name__} has no training stages; train it with loop.fit")
    histories = []
    for stage in stages:
        stop = stop_after[1] if stop_after is not None and stop_after[0] == stage.name else None
        result = fit_stage(model, stage, train, val, cfg, task.objective, seed=derive_seed(seed, stage.name),
                           checkpoint_path=stage_checkpoint_path(checkpoint_path, stage.name),
                           fingerprint=fingerprint, progress=progress, label=label, stop_after_epoch=stop)
        history = result.history.assign(selected=result.history["epoch"] == result.best_epoch)
        history.insert(0, "stage", stage.name)
        histories.append(history)
    for stage in stages:
        path = stage_checkpoint_path(checkpoint_path, stage.name)
        if path is not None:
            path.unlink(missing_ok=True)  # done: a later run must start afresh
    return FitResult(pd.concat(histories, ignore_index=True), result.best_epoch, result.best_state, result.val_probs)
