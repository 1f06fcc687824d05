"""Named loss terms: the pieces an objective (`cmdnet.mvi.objective`) sums with weights.

A term is an `nn.Module` whose `forward(step)` returns a scalar from what one training step shows it (`Step`:
the labels, the output of the network being trained, the teacher's output when there is one, the clinical
vector). Each term declares a `Settings` dataclass for its configuration (everything but the weight) and
registers itself by name with `@loss_term`; `mvi.objectives.<objective>.<name>: {weight: w, ...settings}` in
`config.yaml` puts it into an objective. Adding a term is one module in `cmdnet/mvi/losses/` and one config entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from cmdnet.config import ConfigError, parse_section
from cmdnet.mvi.models.output import ModelOutput


@dataclass
class Step:
    """What the terms of one training step see."""

    labels: Tensor                          # (B,) class codes
    output: ModelOutput                     # the network being trained
    teacher: ModelOutput | None = None      # the teacher's output (distilled methods)
    clinical: Tensor | None = None          # (B, F) standardised clinical vector (teachers)


@dataclass(frozen=True)
class TermContext:
    """What a term may need when it is built: the training fold's labels and the training settings."""

    train_labels: np.ndarray
    n_classes: int
    training: Any                           # cmdnet.mvi.training.loop.TrainConfig


@dataclass(frozen=True)
class NoSettings:
    pass


class LossTerm(nn.Module):
    """Base class of a named term. Subclasses set `name`, `needs_teacher`, `Settings`, and implement `forward`."""

    name: ClassVar[str]
    needs_teacher: ClassVar[bool] = False
    Settings: ClassVar[type] = NoSettings

    def forward(self, step: Step) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


LOSS_TERMS: dict[str, type[LossTerm]] = {}


def loss_term(cls: type[LossTerm]) -> type[LossTerm]:
    """Class decorator: register a term under its `name`."""
    if cls.name in LOSS_TERMS:
        raise ValueError(f"loss term {cls.name!r} is registered twice")
    LOSS_TERMS[cls.name] = cls
    return cls


def term_class(name: str, where: str) -> type[LossTerm]:
    try:
        return LOSS_TERMS[name]
    except KeyError:
        raise ConfigError(f"config {where}: unknown loss term {name!r}; known: {', '.join(sorted(LOSS_TERMS))}") \
            from None


def split_weight(entry: Any, where: str) -> tuple[float, dict]:
    """`{weight: w, ...settings}` -> (w, settings); the weight is required and must be >= 0."""
    if not isinstance(entry, dict) or "weight" not in entry:
        raise ConfigError(f"config {where}: a term needs a mapping with a `weight`, got {entry!r}")
    settings = dict(entry)
    weight = settings.pop("weight")
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
        raise ConfigError(f"config {where}.weight = {weight!r}: expected a number >= 0")
    return float(weight), settings


def build_term(name: str, entry: dict, context: TermContext, where: str) -> tuple[float, LossTerm]:
    cls = term_class(name, where)
    weight, settings = split_weight(entry, where)
    return weight, cls(parse_section(cls.Settings, settings, where), context)


def check_term(name: str, entry: dict, where: str) -> None:
    """Validate one configured term without building it (the workflow does this before any job runs)."""
    cls = term_class(name, where)
    _, settings = split_weight(entry, where)
    parse_section(cls.Settings, settings, where)


def settings_fields(cls: type[LossTerm]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls.Settings)]


TermFactory = Callable[[Any, TermContext], LossTerm]
