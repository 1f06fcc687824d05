"""Voxel grids without pixels: geometry read from headers, reoriented to LPS as `sitk.DICOMOrient` would.

A grid is `size` (x, y, z voxels), `spacing` (mm), `origin` (LPS mm, centre of voxel 0) and `direction`
(row-major 3x3; column `i` is the world direction of index axis `i`). Checking a mask against its series
needs only the two grids, so a whole cohort can be checked from DICOM headers and mask headers.

`to_lps` reorders and flips the index axes so that axis `j` runs along world axis `j` in the positive
sense (L, P, S), exactly as `sitk.DICOMOrient(image, "LPS")` does (the order and flips are SimpleITK's, taken
from a 2x2x2 probe with the same directions); the new origin is the centre of the voxel that becomes index 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SPACING_TOL_MM = 1e-3
ORIGIN_TOL_MM = 1e-3
DIRECTION_TOL = 1e-4


@dataclass(frozen=True)
class Grid:
    """Geometry of a 3D image (see the module docstring)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # row-major 3x3

    def index_to_mm(self, index_xyz: np.ndarray) -> np.ndarray:
        """Physical points (n, 3) of continuous indices (n, 3)."""
        d = np.asarray(self.direction).reshape(3, 3)
        return np.asarray(self.origin) + (np.asarray(index_xyz, float) * np.asarray(self.spacing)) @ d.T


def grid_of(image: sitk.Image) -> Grid:
    return Grid(tuple(int(v) for v in image.GetSize()), tuple(float(v) for v in image.GetSpacing()),
                tuple(float(v) for v in image.GetOrigin()), tuple(float(v) for v in image.GetDirection()))


def read_grid(path: str | Path) -> tuple[Grid, int, int, str]:
    """The grid of an image file from its header only (no pixels), with its dimension, the number of
    components per voxel and the pixel type's name. Raises RuntimeError (SimpleITK) when unreadable."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    dim = reader.GetDimension()
    if dim != 3:
        return Grid((0, 0, 0), (1.0,) * 3, (0.0,) * 3, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)), dim, 1, ""
    grid = Grid(tuple(int(v) for v in reader.GetSize()), tuple(float(v) for v in reader.GetSpacing()),
                tuple(float(v) for v in reader.GetOrigin()), tuple(float(v) for v in reader.GetDirection()))
    return grid, dim, reader.GetNumberOfComponents(), sitk.GetPixelIDValueAsString(reader.GetPixelID())


def to_lps(grid: Grid) -> Grid:
    """The same voxels with index axes along +L, +P, +S (module docstring), as `sitk.DICOMOrient` orders them."""
    d = np.asarray(grid.direction, float).reshape(3, 3)
    # SimpleITK decides the axis order and flips from the direction alone: ask it on a 2x2x2 image.
    probe = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    probe.SetDirection(tuple(float(v) for v in d.ravel()))
    new_d = np.asarray(sitk.DICOMOrient(probe, "LPS").GetDirection()).reshape(3, 3)
    match = d.T @ new_d                                 # +-1 where new axis j is old axis i (flipped or not)
    order = np.argmax(np.abs(match), axis=0)            # new axis j <- old axis order[j]
    flip = match[order, np.arange(3)] < 0
    size = np.asarray(grid.size)
    old_index = np.zeros(3)
    old_index[order] = np.where(flip, size[order] - 1, 0)  # the old index of the new voxel 0
    origin = grid.index_to_mm(old_index[None])[0]
    return Grid(tuple(int(v) for v in size[order]), tuple(float(grid.spacing[i]) for i in order),
                tuple(float(v) for v in origin), tuple(float(v) for v in new_d.ravel()))


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def grid_mismatch(mask: Grid, image: Grid) -> str | None:
    """The first way `mask` is not on `image`'s grid, as a readable phrase, or None."""
    if mask.size != image.size:
        return f"size {mask.size} != image {image.size}"
    checks = (("spacing", mask.spacing, image.spacing, SPACING_TOL_MM, " mm"),
              ("origin", mask.origin, image.origin, ORIGIN_TOL_MM, " mm"),
              ("direction", mask.direction, image.direction, DIRECTION_TOL, ""))
    for name, got, want, tol, unit in checks:
        if np.max(np.abs(np.subtract(got, want))) > tol:
            return f"{name} {_fmt(got)} != image {_fmt(want)} (tolerance {tol:g}{unit})"
    return None
