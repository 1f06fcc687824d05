"""Local (CNN) and non-local branches on 16^3 patches (3D) or 16^2 slices (2D), and the method registry.

Local branch (Sect. 2.1):  conv3(1 -> c0) + ReLU, max-pool 2 (16 -> 8), [conv3(c_{l-1} -> c_l) + ReLU]...
Non-local branch (2.2):    conv3(1 -> C) + ReLU, max-pool 2 (16 -> 8), NonLocalBlock(C -> C_inter), no residual.
The non-local operation runs on the 8^3 (8^2) maps: at 16^3 its N x N attention would cost (4096/512)^2 = 64x
the memory and time of the 8^3 one.

Each branch's maps are global-average-pooled to a vector and standardised by a BatchNorm1d without affine
parameters (zero mean, unit variance per feature over the batch; running statistics at eval). This keeps the
feature scale fixed, so that the CIFA/DCCA objectives cannot be lowered by shrinking Y_i towards 0; the same
normalisation is used by every method so that the comparison between heads is fair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from cmdnet.grade.fusion import CIFAHead, ConcatHead, DCCAHead, SingleHead
from cmdnet.grade.nonlocal_block import NonLocalBlock

#: method name -> (uses local branch, uses non-local branch)
GRADE_METHODS: dict[str, tuple[bool, bool]] = {
    "local": (True, False),
    "nonlocal": (False, True),
    "cifa": (True, True),
    "concat": (True, True),
    "dcca": (True, True),
    "common": (True, True),
    "individual": (True, True),
}
DIMS = {"2d": 2, "3d": 3}


class GradeOutput(NamedTuple):
    logits: torch.Tensor      # (B, n_classes)
    aux_loss: torch.Tensor    # scalar; the CIFA/DCCA objective in training mode, 0 otherwise


def _layers(dim: int):
    if dim == 3:
        return nn.Conv3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d
    return nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d


class LocalBranch(nn.Sequential):
    """CNN: (B, 1, 16, ...) -> (B, channels[-1]) pooled local deep feature."""

    def __init__(self, dim: int, channels: Sequence[int] = (32, 64)):
        if len(channels) < 1 or min(channels) < 1:
            raise ValueError(f"LocalBranch: channels must be a non-empty list of positive ints, got {channels}")
        conv, pool, gap = _layers(dim)
        layers: list[nn.Module] = [conv(1, channels[0], 3, padding=1), nn.ReLU(), pool(2)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [conv(c_in, c_out, 3, padding=1), nn.ReLU()]
        layers += [gap(1), nn.Flatten()]
        super().__init__(*layers)
        self.out_features = channels[-1]


class NonLocalBranch(nn.Sequential):
    """conv + pool stem, then the non-local operation: (B, 1, 16, ...) -> (B, inter_channels)."""

    def __init__(self, dim: int, channels: int = 64, inter_channels: int = 64, subsample: bool = False):
        conv, pool, gap = _layers(dim)
        super().__init__(conv(1, channels, 3, padding=1), nn.ReLU(), pool(2),
                         NonLocalBlock(channels, inter_channels, dim, subsample), gap(1), nn.Flatten())
        self.out_features = inter_channels


class GradeModel(nn.Module):
    """Branch(es) -> pooled, standardised features -> head. forward(x) -> GradeOutput(logits, aux_loss).

    x: (B, 1, 16, 16, 16) for dim "3d" or (B, 1, 16, 16) for "2d"; the channel axis may be omitted.
    """

    def __init__(self, method: str, dim: str, local_branch: nn.Module | None, nonlocal_branch: nn.Module | None,
                 head: nn.Module):
        super().__init__()
        self.method, self.dim = method, dim
        self.spatial_dims = DIMS[dim]
        self.local_branch, self.nonlocal_branch, self.head = local_branch, nonlocal_branch, head
        self.norm1 = nn.BatchNorm1d(local_branch.out_features, affine=False) if local_branch else None
        self.norm2 = nn.BatchNorm1d(nonlocal_branch.out_features, affine=False) if nonlocal_branch else None

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.spatial_dims + 1:
            x = x.unsqueeze(1)
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != 1:
            raise ValueError(f"{self.method}/{self.dim} model: expected input (B, 1, {'16, ' * self.spatial_dims}"
                             f"...) got shape {tuple(x.shape)}")
        return x

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Standardised pooled features (Y1^T (B, I1) or None, Y2^T (B, I2) or None)."""
        x = self._input(x)
        y1 = self.norm1(self.local_branch(x)) if self.local_branch is not None else None
        y2 = self.norm2(self.nonlocal_branch(x)) if self.nonlocal_branch is not None else None
        return y1, y2

    def forward(self, x: torch.Tensor) -> GradeOutput:
        y1, y2 = self.features(x)
        if y1 is None or y2 is None:
            logits, aux = self.head(y1 if y1 is not None else y2)
        else:
            logits, aux = self.head(y1, y2)
        return GradeOutput(logits, aux)


def build_grade_model(method: str, dim: str, *, local_channels: Sequence[int] = (32, 64),
                      nonlocal_channels: int = 64, nonlocal_inter_channels: int = 64, common_dim: int = 16,
                      cifa_phi: tuple[float, float] = (1.0, 1.0), cifa_theta: tuple[float, float] = (1.0, 1.0),
                      ortho_weight: float = 1.0, dcca_dim: int = 16, dcca_r1: float = 1e-3,
                      dcca_r2: float = 1e-3, nonlocal_subsample: bool = False, n_classes: int = 2) -> GradeModel:
    """One model of the grading paper.

    method: "local", "nonlocal" (Table 1 single rows), "cifa" (local + non-local fusion by common and
    individual feature analysis: Table 1 fusion row = Table 2 last row), "concat", "dcca", "common",
    "individual" (Table 2). dim: "2d" (16x16 slices) or "3d" (16^3 patches).
    """
    if method not in GRADE_METHODS:
        raise ValueError(f"unknown grading method {method!r}; known: {sorted(GRADE_METHODS)}")
    if dim not in DIMS:
        raise ValueError(f"unknown dim {dim!r}; known: {sorted(DIMS)}")
    use_local, use_nonlocal = GRADE_METHODS[method]
    local = LocalBranch(DIMS[dim], local_channels) if use_local else None
    nonloc = (NonLocalBranch(DIMS[dim], nonlocal_channels, nonlocal_inter_channels, nonlocal_subsample)
              if use_nonlocal else None)
    if method in ("local", "nonlocal"):
        head: nn.Module = SingleHead((local or nonloc).out_features, n_classes)
    elif method == "concat":
        head = ConcatHead(local.out_features, nonloc.out_features, n_classes)
    elif method == "dcca":
        head = DCCAHead(local.out_features, nonloc.out_features, dcca_dim, dcca_r1, dcca_r2, n_classes)
    else:
        mode = {"cifa": "both", "common": "common", "individual": "individual"}[method]
        head = CIFAHead(local.out_features, nonloc.out_features, common_dim, mode, cifa_phi, cifa_theta,
                        ortho_weight, n_classes)
    return GradeModel(method, dim, local, nonloc, head)
