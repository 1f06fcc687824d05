"""3D convolutional building blocks shared by CMD-Net and the baselines.

Channel plan of the paper: four blocks of 64, 128, 256, 256 channels, scaled by `width`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormKind = Literal["batch", "instance", "group"]
NORM_KINDS: tuple[str, ...] = ("batch", "instance", "group")
PAPER_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 256)
PHASE_ORDER: tuple[str, str] = ("PRE", "HBP")


def scaled_channels(width: float, base: Sequence[int] = PAPER_CHANNELS) -> tuple[int, ...]:
    """`base` channels times `width`, rounded, at least 1 each (width 1.0 -> 64, 128, 256, 256)."""
    if not (isinstance(width, (int, float)) and width > 0 and math.isfinite(width)):
        raise ValueError(f"width must be a positive finite number, got {width!r}")
    return tuple(max(1, int(round(c * width))) for c in base)


def make_norm(kind: NormKind, channels: int, dims: int = 3) -> nn.Module:
    """Normalisation layer for `dims`-D feature maps (3: the 3D networks, 2: M2Net's ResNets).

    - `"batch"`: `BatchNorm` (paper default; needs batches of more than one sample in training).
    - `"instance"`: `InstanceNorm(affine=True)` (batch-size independent; needs more than one voxel).
    - `"group"`: `GroupNorm` with `gcd(8, channels)` groups (batch-size independent).
    """
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    if kind == "batch":
        return (nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d)(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    raise ValueError(f"norm must be one of {NORM_KINDS}, got {kind!r}")


class ConvBlock(nn.Module):
    """Two `3x3x3` convolutions, each followed by normalisation and ReLU: `(B, Cin, ...) -> (B, Cout, ...)`."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormKind = "batch"):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def pool_where_possible(x: Tensor) -> Tensor:
    """2x max-pool along each spatial axis longer than 1 (a size-1 axis is left alone)."""
    kernel = tuple(2 if s > 1 else 1 for s in x.shape[2:])
    return F.max_pool3d(x, kernel_size=kernel, stride=kernel)


def check_in_shape(in_shape_zyx: Sequence[int]) -> tuple[int, int, int]:
    """Validate a configured `(Z, Y, X)` input shape."""
    shape = tuple(int(s) for s in in_shape_zyx)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ValueError(f"in_shape_zyx must be three positive sizes (Z, Y, X), got {tuple(in_shape_zyx)!r}")
    return shape  # type: ignore[return-value]


def check_images(images: Tensor, n_phases: int, in_shape_zyx: tuple[int, int, int]) -> None:
    """Raise ValueError unless `images` is a float `(B, n_phases, Z, Y, X)` tensor of the configured shape."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 5:
        raise ValueError(f"images must have shape (B, P, Z, Y, X), got {tuple(images.shape)}")
    if not torch.is_floating_point(images):
        raise ValueError(f"images must be a float tensor, got {images.dtype}")
    if images.shape[1] != n_phases:
        raise ValueError(f"images has {images.shape[1]} phase channels, the model expects {n_phases}")
    if tuple(images.shape[2:]) != in_shape_zyx:
        raise ValueError(f"images spatial shape {tuple(images.shape[2:])} differs from the model's "
                         f"in_shape_zyx {in_shape_zyx}")


def check_phases(phases: Sequence[str]) -> tuple[str, ...]:
    """Validate a phase tuple: a non-empty subset of ("PRE", "HBP") in that order, no repeats."""
    phases = tuple(phases)
    if not phases or any(p not in PHASE_ORDER for p in phases) or len(set(phases)) != len(phases):
        raise ValueError(f"phases must be a non-empty subset of {PHASE_ORDER} without repeats, got {phases!r}")
    if list(phases) != [p for p in PHASE_ORDER if p in phases]:
        raise ValueError(f"phases must follow the order {PHASE_ORDER}, got {phases!r}")
    return phases


def check_head(n_classes: int, dropout: float = 0.0) -> None:
    """Validate a classifier's class count (at least 2) and dropout probability (in [0, 1))."""
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def reject_clinical(model: nn.Module, clinical: object) -> None:
    """Image-only models take no clinical input: raise TypeError if one is given."""
    if clinical is not None:
        raise TypeError(f"{type(model).__name__} is image-only and takes no clinical input")
