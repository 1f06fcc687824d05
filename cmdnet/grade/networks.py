"""Local (CNN) and non-local branches on 16^3 patches (3D) or 16^2 slices (2D), and the model builder.

Both branches have the same depth: a stem, one feature layer, and a readout.

    Local branch (Sect. 2.1):  conv3(1 -> c0) + ReLU, max-pool 2 (16 -> 8), [conv3(c_{l-1} -> c_l) + ReLU]...
    Non-local branch (2.2):    conv3(1 -> C) + ReLU, max-pool 2 (16 -> 8), NonLocalBlock(C -> C_inter)
    Readout "flatten":         the whole 8^3 (8^2) map, flattened, linear projection to `feature_dim`
    Readout "pooled":          global average pooling (one value per channel)

With the default local widths (two convolutions) the two branches differ only in their feature layer: a
3x3x3 convolution + ReLU, or the non-local operation. The non-local operation runs on the 8^3 (8^2) maps: at
16^3 its N x N attention would cost (4096/512)^2 = 64x the memory and time of the 8^3 one.

Why "flatten" is the default: average pooling right after the non-local block collapses it. With y_i =
sum_j A_ij g_j and g_j = W_g x_j + b_g, mean_i y_i = W_g (sum_j a_j x_j) + b_g with a_j = mean_i A_ij: a
linear map of an attention-weighted average of the stem's maps, which is the same for every spatial
permutation of those maps. The per-position responses y_i never reach the classifier. The flattened map
keeps them (the learned projection sees every position); "pooled" is kept as a named control
(`nonlocal_pooled`, `cifa_pooled`; tested).

Each branch's feature is standardised by a BatchNorm1d without affine parameters (zero mean, unit variance
per feature over the batch; running statistics at eval). This keeps the feature scale fixed, so that the
CIFA/DCCA objectives cannot be lowered by shrinking Y_i towards 0; every method has it, for a fair comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from cmdnet.grade.fusion import (
    CIFAAnalysis,
    CIFAHead,
    ConcatHead,
    DCCAHead,
    SingleHead,
)
from cmdnet.grade.methods import GRADE_METHODS, grade_method
from cmdnet.grade.nonlocal_block import NonLocalBlock

DIMS = {"2d": 2, "3d": 3}
MAP_SIDE = 8   # the 16-voxel patch after one max-pool


class GradeOutput(NamedTuple):
    logits: torch.Tensor      # (B, n_classes)
    aux_loss: torch.Tensor    # scalar; the CIFA/DCCA objective in training mode, 0 otherwise


def _layers(dim: int):
    if dim == 3:
        return nn.Conv3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d
    return nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d


def _readout(dim: int, channels: int, readout: str, feature_dim: int) -> tuple[list[nn.Module], int]:
    """Layers from a (B, channels, 8, 8[, 8]) map to a (B, out) feature, and out."""
    if readout == "pooled":
        return [_layers(dim)[2](1), nn.Flatten()], channels
    if readout == "flatten":
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        return [nn.Flatten(), nn.Linear(channels * MAP_SIDE ** dim, feature_dim)], feature_dim
    raise ValueError(f"readout must be 'flatten' or 'pooled', got {readout!r}")


class LocalBranch(nn.Sequential):
    """CNN: (B, 1, 16, ...) -> (B, out_features) local deep feature."""

    def __init__(self, dim: int, channels: Sequence[int] = (32, 64), readout: str = "flatten",
                 feature_dim: int = 64):
        if len(channels) < 1 or min(channels) < 1:
            raise ValueError(f"LocalBranch: channels must be a non-empty list of positive ints, got {channels}")
        conv, pool, _ = _layers(dim)
        layers: list[nn.Module] = [conv(1, channels[0], 3, padding=1), nn.ReLU(), pool(2)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [conv(c_in, c_out, 3, padding=1), nn.ReLU()]
        tail, out = _readout(dim, channels[-1], readout, feature_dim)
        super().__init__(*layers, *tail)
        self.out_features = out


class NonLocalBranch(nn.Sequential):
    """conv + pool stem, the non-local operation, a readout: (B, 1, 16, ...) -> (B, out_features).

    Indices: [0] stem conv, [1] ReLU, [2] max-pool, [3] the NonLocalBlock, [4:] the readout.
    """

    def __init__(self, dim: int, channels: int = 64, inter_channels: int = 64, subsample: bool = False,
                 readout: str = "flatten", feature_dim: int = 64):
        conv, pool, _ = _layers(dim)
        tail, out = _readout(dim, inter_channels, readout, feature_dim)
        super().__init__(conv(1, channels, 3, padding=1), nn.ReLU(), pool(2),
                         NonLocalBlock(channels, inter_channels, dim, subsample), *tail)
        self.out_features = out


class GradeModel(nn.Module):
    """Branch(es) -> standardised features -> head. forward(x) -> GradeOutput(logits, aux_loss).

    x: (B, 1, 16, 16, 16) for dim "3d" or (B, 1, 16, 16) for "2d"; the channel axis may be omitted.
    Under autocast (mixed precision) only the branches run in low precision: standardisation and head (SVD,
    Cholesky, the CIFA/DCCA objectives) run in float32.
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
        """Standardised features (Y1^T (B, I1) or None, Y2^T (B, I2) or None), float32."""
        x = self._input(x)
        raw1 = self.local_branch(x) if self.local_branch is not None else None
        raw2 = self.nonlocal_branch(x) if self.nonlocal_branch is not None else None
        with torch.autocast(x.device.type, enabled=False):
            y1 = self.norm1(raw1.float()) if raw1 is not None else None
            y2 = self.norm2(raw2.float()) if raw2 is not None else None
        return y1, y2

    def forward(self, x: torch.Tensor) -> GradeOutput:
        y1, y2 = self.features(x)
        with torch.autocast(x.device.type, enabled=False):
            if y1 is None or y2 is None:
                logits, aux = self.head(y1 if y1 is not None else y2)
            else:
                logits, aux = self.head(y1, y2)
        return GradeOutput(logits, aux)


def build_grade_model(method: str, dim: str, *, local_channels: Sequence[int] = (32, 64),
                      nonlocal_channels: int = 64, nonlocal_inter_channels: int = 64, feature_dim: int = 64,
                      common_dim: int = 16, cifa_phi: tuple[float, float] = (1.0, 1.0),
                      cifa_theta: tuple[float, float] = (1.0, 1.0), ortho_weight: float = 1.0, dcca_dim: int = 16,
                      dcca_r1: float = 1e-3, dcca_r2: float = 1e-3, nonlocal_subsample: bool = False,
                      n_classes: int = 2) -> GradeModel:
    """One model of the grading paper, as its entry in `cmdnet.grade.methods.GRADE_METHODS` describes it.

    dim: "2d" (16x16 slices) or "3d" (16^3 patches). feature_dim: width of each flattened-and-projected
    branch feature (pooled readouts give the branch's channel count instead).
    """
    spec = grade_method(method)
    if dim not in DIMS:
        raise ValueError(f"unknown dim {dim!r}; known: {sorted(DIMS)}")
    local = LocalBranch(DIMS[dim], local_channels, "flatten", feature_dim) if spec.local else None
    nonloc = (NonLocalBranch(DIMS[dim], nonlocal_channels, nonlocal_inter_channels, nonlocal_subsample,
                             spec.nonlocal_readout, feature_dim) if spec.nonlocal_ else None)
    cifa_kw = dict(phi=cifa_phi, theta=cifa_theta, ortho_weight=ortho_weight)
    if spec.head == "single":
        head: nn.Module = SingleHead((local or nonloc).out_features, n_classes)
    elif spec.head == "concat":
        analysis = (CIFAAnalysis(local.out_features, nonloc.out_features, common_dim, **cifa_kw)
                    if spec.aux == "cifa" else None)
        head = ConcatHead(local.out_features, nonloc.out_features, n_classes, analysis)
    elif spec.head == "dcca":
        head = DCCAHead(local.out_features, nonloc.out_features, dcca_dim, dcca_r1, dcca_r2, n_classes)
    else:
        head = CIFAHead(local.out_features, nonloc.out_features, common_dim, spec.cifa_mode, n_classes=n_classes,
                        **cifa_kw)
    return GradeModel(method, dim, local, nonloc, head)


__all__ = ["DIMS", "GRADE_METHODS", "GradeModel", "GradeOutput", "LocalBranch", "NonLocalBranch",
           "build_grade_model"]
