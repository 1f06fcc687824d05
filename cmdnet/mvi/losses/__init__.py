"""Losses of CMD-Net: focal loss (L_T^s, L_S^s of Eq. 6) and the distillation losses (Eqs. 4, 5, SP).

`build_loss(name, **kwargs)` assembles a loss by registry name (as `cmdnet.mvi.models.build_model`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cmdnet.mvi.losses.distillation import (
    ClassDistillationLoss, FeatureDistillationLoss, HintonKDLoss, SimilarityPreservingLoss,
)
from cmdnet.mvi.losses.focal import FocalLoss, class_balanced_alpha

LOSS_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "focal": FocalLoss,
    "class_kd": ClassDistillationLoss,
    "feature_kd": FeatureDistillationLoss,
    "sp": SimilarityPreservingLoss,
}


def build_loss(name: str, **kwargs) -> nn.Module:
    """The loss registered as `name`, constructed with `kwargs`. Unknown name -> ValueError listing names."""
    try:
        factory = LOSS_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSS_REGISTRY))}") from None
    return factory(**kwargs)


__all__ = [
    "ClassDistillationLoss", "FeatureDistillationLoss", "FocalLoss", "HintonKDLoss", "LOSS_REGISTRY",
    "SimilarityPreservingLoss", "build_loss", "class_balanced_alpha",
]
