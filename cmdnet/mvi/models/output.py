"""The value every MVI model returns (docs/architecture.md, "Model interface")."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutput:
    """Class logits `(B, C)` plus named intermediate features.

    CMD-Net fills `features["hbp"]`, `features["pre"]` (the 512-d Z vectors of Eq. 5, before cross
    attention) and `features["fused"]` (the concatenated, refined Z fed to the head). Baselines add their
    own keys (documented on each class); `Concat2S` adds per-phase auxiliary logits.
    """

    logits: Tensor
    features: dict[str, Tensor] = field(default_factory=dict)
