"""Model-ready arrays of one fold, held in memory, and the augmentation applied to training batches.

The cohort is small (hundreds of patients of a few thousand voxels each), so everything lives in one tensor
and batches are index slices: loading never waits on disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cmdnet.config import default_field, parse_section


@dataclass
class FoldArrays:
    """Images `(N, P, Z, Y, X)`, labels `(N,)`, optional clinical matrix `(N, F)`, patient ids."""

    images: np.ndarray
    labels: np.ndarray
    patient_ids: list[str]
    clinical: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.patient_ids)
        if self.images.shape[0] != n or self.labels.shape[0] != n:
            raise ValueError(f"arrays disagree on the number of patients: images {self.images.shape[0]}, "
                             f"labels {self.labels.shape[0]}, ids {n}")
        if self.clinical is not None and self.clinical.shape[0] != n:
            raise ValueError(f"clinical matrix has {self.clinical.shape[0]} rows for {n} patients")

    def __len__(self) -> int:
        return len(self.patient_ids)

    def subset(self, ids: list[str]) -> "FoldArrays":
        index = {p: i for i, p in enumerate(self.patient_ids)}
        missing = [p for p in ids if p not in index]
        if missing:
            raise KeyError(f"patients not in the dataset: {missing[:5]}")
        rows = np.array([index[p] for p in ids], dtype=np.int64)
        return FoldArrays(self.images[rows], self.labels[rows], list(ids),
                          None if self.clinical is None else self.clinical[rows])

    def tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        out = {"images": torch.as_tensor(self.images, dtype=torch.float32, device=device),
               # torch.tensor copies: labels may be a read-only view of a pandas column
               "labels": torch.tensor(np.asarray(self.labels), dtype=torch.long, device=device)}
        if self.clinical is not None:
            out["clinical"] = torch.as_tensor(self.clinical, dtype=torch.float32, device=device)
        return out


@dataclass(frozen=True)
class Augmentation:
    """Random left-right/anterior-posterior flips, a small rotation about the slice axis and intensity jitter.

    All randomness comes from the generator passed to `__call__`, so a resumed run continues the same
    sequence. The same transform is applied to every phase of a patient (the phases share the tumour's
    position in the crop, not a voxel grid; a common transform keeps them consistent).
    """

    flip: bool = default_field("mvi.training.augmentation.flip")
    rotate_deg: float = default_field("mvi.training.augmentation.rotate_deg")
    intensity_jitter: float = default_field("mvi.training.augmentation.intensity_jitter")

    @classmethod
    def from_dict(cls, d: dict) -> "Augmentation":
        return parse_section(cls, d, "mvi.training.augmentation")

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b = images.shape[0]
        draws = torch.rand((b, 5), generator=generator)  # flip x, flip y, angle, scale, shift
        out = images
        if self.flip:
            flip_x = draws[:, 0] < 0.5
            flip_y = draws[:, 1] < 0.5
            out = torch.where(flip_x.view(b, 1, 1, 1, 1).to(out.device), out.flip(-1), out)
            out = torch.where(flip_y.view(b, 1, 1, 1, 1).to(out.device), out.flip(-2), out)
        if self.rotate_deg > 0:
            angles = (draws[:, 2] * 2 - 1) * math.radians(self.rotate_deg)
            out = _rotate_about_z(out, angles.to(out.device))
        if self.intensity_jitter > 0:
            scale = 1 + (draws[:, 3] * 2 - 1) * self.intensity_jitter
            shift = (draws[:, 4] * 2 - 1) * self.intensity_jitter
            out = out * scale.view(b, 1, 1, 1, 1).to(out.device) + shift.view(b, 1, 1, 1, 1).to(out.device)
        return out


def _rotate_about_z(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate `(B, P, Z, Y, X)` volumes in the axial (x, y) plane by `angles` radians (trilinear)."""
    b = images.shape[0]
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.zeros((b, 3, 4), dtype=images.dtype, device=images.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin   # grid x
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos    # grid y
    theta[:, 2, 2] = 1.0                         # grid z
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
