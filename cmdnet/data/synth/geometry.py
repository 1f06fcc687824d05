"""Image grids of the synthetic series: size, spacing, origin and direction, as SimpleITK reads them back.

A `Grid` maps a voxel index (i, j, k) (column, row, slice) to the physical LPS point

    p = origin + D @ (spacing * (i, j, k)),   D = [row_dir | col_dir | slice_dir]  (columns),

with slice_dir = row_dir x col_dir, which is the normal GDCM/SimpleITK sorts slices along. So after
`ImageSeriesReader` the image has exactly `size`, `spacing`, `origin` and `direction` of the grid,
whatever the instance numbers or file names say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from cmdnet.data.synth.params import SynthParams


@dataclass(frozen=True)
class Grid:
    """One series' voxel grid. `size` and `spacing` are (x, y, z) = (columns, rows, slices)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 numbers, row-major 3x3 with the axes as columns (SimpleITK order)

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def physical_points(self) -> np.ndarray:
        """Physical coordinates of every voxel, float32 (Z, Y, X, 3) in mm (numpy order z, y, x)."""
        nx, ny, nz = self.size
        d = self.matrix * np.asarray(self.spacing)[None, :]  # columns scaled by spacing
        i = np.arange(nx, dtype=np.float32)
        j = np.arange(ny, dtype=np.float32)
        k = np.arange(nz, dtype=np.float32)
        o = np.asarray(self.origin, dtype=np.float32)
        d = d.astype(np.float32)
        return (o + k[:, None, None, None] * d[:, 2] + j[None, :, None, None] * d[:, 1]
                + i[None, None, :, None] * d[:, 0])


def orientation_axes(kind: str, rng: np.random.Generator, max_tilt_deg: float) -> np.ndarray:
    """Row and column direction cosines (2, 3) of one orientation kind (see `ORIENTATIONS`).

    axial: row +x, col +y (slices run foot->head); row_flipped: row -x (slices then run head->foot);
    rotated: in-plane 90 degree rotation (row +y, col -x); oblique: axial tilted by 3..max_tilt degrees
    about a random in-plane axis.
    """
    if kind == "axial":
        return np.array([[1.0, 0, 0], [0, 1.0, 0]])
    if kind == "row_flipped":
        return np.array([[-1.0, 0, 0], [0, 1.0, 0]])
    if kind == "rotated":
        return np.array([[0, 1.0, 0], [-1.0, 0, 0]])
    if kind == "oblique":
        axis_angle = rng.uniform(0, 2 * math.pi)
        tilt = math.radians(rng.uniform(min(3.0, max_tilt_deg), max_tilt_deg))
        axis = np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0])
        rot = Rotation.from_rotvec(axis * tilt).as_matrix()
        return (rot @ np.eye(3)[:, :2]).T
    raise ValueError(f"unknown orientation {kind!r}")


@dataclass(frozen=True)
class AcquisitionPlan:
    """Geometry shared by a patient's phases: orientation, spacing and matrix (phases jitter the rest)."""

    orientation: str
    axes: np.ndarray          # (2, 3) row and column direction cosines
    pixel_spacing: float
    slice_thickness: float
    columns: int
    rows: int
    n_slices: int


def sample_acquisition(rng: np.random.Generator, params: SynthParams, orientation: str,
                       tumour_diameter: float) -> AcquisitionPlan:
    """Draw the patient's acquisition: spacing, matrix and a slab thick enough for the tumour + 40 mm."""
    axes = orientation_axes(orientation, rng, params.max_tilt_deg)
    spacing = round(float(rng.uniform(*params.pixel_spacing_mm)), 3)
    fov = rng.uniform(*params.fov_mm)
    columns = int(np.clip(round(fov / spacing), *params.matrix_size))
    rows = int(np.clip(round(columns * rng.uniform(0.8, 1.0)), params.matrix_size[0], columns))
    thickness = round(float(rng.uniform(*params.slice_thickness_mm)), 2)
    lo, hi = params.n_slices
    needed = math.ceil((tumour_diameter + 40.0) / thickness)
    n_slices = int(rng.integers(min(max(lo, needed), hi), hi + 1))
    return AcquisitionPlan(orientation, axes, spacing, thickness, columns, rows, n_slices)


def phase_grid(plan: AcquisitionPlan, centre: np.ndarray, rng: np.random.Generator) -> Grid:
    """The grid of one phase: the patient's acquisition centred near `centre` (mm, LPS).

    Phases differ slightly (origin shifted by up to 4 mm in-plane and half a slice across, and up to
    2 slices fewer), as separate breath-holds do; the anatomy stays where it is.
    """
    n_slices = max(plan.n_slices - int(rng.integers(0, 3)), 1)
    row, col = plan.axes
    normal = np.cross(row, col)
    shift = (rng.uniform(-4, 4) * row + rng.uniform(-4, 4) * col
             + rng.uniform(-0.5, 0.5) * plan.slice_thickness * normal)
    extent = np.array([plan.columns - 1, plan.rows - 1, n_slices - 1], dtype=float)
    steps = extent * np.array([plan.pixel_spacing, plan.pixel_spacing, plan.slice_thickness])
    direction = np.stack([row, col, normal], axis=1)
    origin = centre + shift - direction @ (steps / 2)
    origin = np.round(origin, 3)  # stored as DICOM decimal strings
    return Grid(size=(plan.columns, plan.rows, n_slices),
                spacing=(plan.pixel_spacing, plan.pixel_spacing, plan.slice_thickness),
                origin=tuple(float(v) for v in origin),
                direction=tuple(float(v) for v in direction.ravel()))
