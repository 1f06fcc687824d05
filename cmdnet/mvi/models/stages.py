"""How a network that is trained stage-wise describes its stages (trained by `cmdnet.mvi.training.stagewise`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class TrainingStage:
    """One stage: the modules it trains and the logits it is supervised and selected on.

    `modules` are trained in this stage only; every other parameter of the network is frozen (no gradient,
    its normalisation layers in eval mode) while the stage trains. `logits` maps the images `(B, P, Z, Y, X)`
    to this stage's logits `(B, n_classes)`.
    """

    name: str
    modules: tuple[nn.Module, ...]
    logits: Callable[[Tensor], Tensor]
