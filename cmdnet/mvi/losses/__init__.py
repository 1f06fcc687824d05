"""Losses of CMD-Net: the focal loss (L_T^s, L_S^s of Eq. 6), the distillation losses (Eqs. 4, 5; Tung & Mori's
similarity-preserving loss), and their named-term wrappers (`terms.LOSS_TERMS`) that objectives are built from.

Every module of this package is imported here, so a new loss module's `@loss_term` classes register themselves.
"""

from __future__ import annotations

import importlib
import pkgutil

from cmdnet.mvi.losses.distillation import (
    ClassDistillationLoss, FeatureDistillationLoss, HintonKDLoss, SimilarityPreservingLoss,
)
from cmdnet.mvi.losses.focal import FocalLoss, class_balanced_alpha
from cmdnet.mvi.losses.terms import LOSS_TERMS, LossTerm, Step, TermContext, loss_term

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ClassDistillationLoss", "FeatureDistillationLoss", "FocalLoss", "HintonKDLoss", "LOSS_TERMS", "LossTerm",
    "SimilarityPreservingLoss", "Step", "TermContext", "class_balanced_alpha", "loss_term",
]
