"""The 2D images of a series, their placement in space, and the checks that they form one 3D volume.

Images are sorted along the slice normal `n = r x c` (r, c = row and column direction cosines of
ImageOrientationPatient) by `d_i = n . p_i` (p_i = ImagePositionPatient). One volume means: one image per
position, no in-plane drift between slices, and gaps `d_{i+1} - d_i` all within
`max(SPACING_REL_TOL * median gap, SPACING_ABS_TOL_MM)` of the median gap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from cmdnet.data.dicom.headers import Header, Where

# Tolerances (mm unless said otherwise).
SAME_POSITION_MM = 0.01  # two slices closer than this along the normal are at the same position
SPACING_REL_TOL = 0.01   # slice gaps may differ from the median gap by max(1 % of it, SPACING_ABS_TOL_MM)
SPACING_ABS_TOL_MM = 0.01
COSINE_TOL = 1e-4        # direction cosines of all slices must agree to this
IN_PLANE_REL_TOL = 0.01  # in-plane offset between slices, as a fraction of the pixel spacing

# Attributes that may vary between images at one slice position of a 4D series; named in the refusal.
VOLUME_KEYS = ("TemporalPositionIdentifier", "AcquisitionNumber", "DiffusionBValue", "EchoTime",
               "TriggerTime", "InversionTime")


@dataclass(frozen=True)
class Frame:
    """One 2D image: a single-frame file (frame=None) or one frame of a multi-frame file (0-based)."""

    path: Path
    frame: int | None
    position: np.ndarray      # ImagePositionPatient, (3,)
    orientation: np.ndarray   # ImageOrientationPatient, (6,)
    pixel_spacing: np.ndarray  # (row spacing, column spacing)
    rescale: tuple[float, float]  # (slope, intercept)
    volume_keys: tuple         # values of VOLUME_KEYS, to explain a 4D refusal


@dataclass(frozen=True)
class Stack:
    """A validated stack: frames sorted along the normal, and the volume's geometry in LPS world mm."""

    frames: list[Frame]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]  # row-major 3x3, columns are the x, y, z axis directions


def _functional(ds: pydicom.Dataset, frame_item: pydicom.Dataset | None, sequence: str) -> pydicom.Dataset | None:
    """The first item of a functional-group `sequence` for one frame: per-frame first, then shared."""
    for groups in (frame_item, first_item(ds.get("SharedFunctionalGroupsSequence"))):
        if groups is not None and sequence in groups:
            item = first_item(groups[sequence].value)
            if item is not None:
                return item
    return None


def first_item(sequence: Any) -> Any:
    return sequence[0] if sequence else None


def _floats(value: Any, n: int, what: str, path: Path, where: Where) -> np.ndarray:
    try:
        array = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        array = np.array([])
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise where.error(f"file {path.name} has a missing or invalid {what}")
    return array


def _volume_keys(*items: pydicom.Dataset | None) -> tuple:
    values = []
    for key in VOLUME_KEYS:
        value = None
        for item in items:
            if item is not None and item.get(key) is not None:
                value = str(item.get(key))
                break
        values.append(value)
    return tuple(values)


def frames_of(header: Header, where: Where) -> list[Frame]:
    """The 2D images of one file, with their geometry and rescale (per-frame functional groups for
    enhanced multi-frame files, the top-level attributes otherwise)."""
    ds, path = header.ds, header.path
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        if n_frames > 1:
            raise where.error(f"file {path.name} holds {n_frames} frames without per-frame geometry "
                              "(not an enhanced image); cannot place its slices")
        rescale = (float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0))
        return [Frame(path, None,
                       _floats(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", path, where),
                       _floats(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", path, where),
                       _floats(ds.get("PixelSpacing"), 2, "PixelSpacing", path, where),
                       rescale, _volume_keys(ds))]
    if len(per_frame) != n_frames:
        raise where.error(f"file {path.name} declares {n_frames} frames but describes {len(per_frame)}")
    frames = []
    for index, item in enumerate(per_frame):
        position = _functional(ds, item, "PlanePositionSequence")
        orientation = _functional(ds, item, "PlaneOrientationSequence")
        measures = _functional(ds, item, "PixelMeasuresSequence")
        transform = _functional(ds, item, "PixelValueTransformationSequence")
        content = _functional(ds, item, "FrameContentSequence")
        echo = _functional(ds, item, "MREchoSequence")
        diffusion = _functional(ds, item, "MRDiffusionSequence")
        what = f"frame {index + 1}"
        rescale = (1.0, 0.0) if transform is None else (float(transform.get("RescaleSlope", 1.0) or 1.0),
                                                         float(transform.get("RescaleIntercept", 0.0) or 0.0))
        keys = list(_volume_keys(diffusion, ds))
        keys[VOLUME_KEYS.index("TemporalPositionIdentifier")] = (
            None if content is None else str(content.get("TemporalPositionIndex")))
        keys[VOLUME_KEYS.index("EchoTime")] = None if echo is None else str(echo.get("EffectiveEchoTime"))
        frames.append(Frame(
            path, index,
            _floats(getattr(position, "ImagePositionPatient", None), 3, f"{what} ImagePositionPatient", path, where),
            _floats(getattr(orientation, "ImageOrientationPatient", None), 6, f"{what} ImageOrientationPatient",
                    path, where),
            _floats(getattr(measures, "PixelSpacing", None), 2, f"{what} PixelSpacing", path, where),
            rescale, tuple(keys)))
    return frames


def check_images(headers: list[Header], problems: dict[Path, str], where: Where) -> tuple[int, int]:
    """Refusals that need only the per-file headers: corrupt pixel data, mosaic, 2D, mixed matrix, colour.

    Returns the common (Rows, Columns)."""
    for header in headers:
        if header.path in problems:
            raise where.error(f"file {header.path.name}: {problems[header.path]}")
    for header in headers:
        image_type = [str(v).upper() for v in (header.ds.get("ImageType") or [])]
        siemens = "SIEMENS" in str(header.ds.get("Manufacturer", "")).upper()
        # (0019,100A) is Siemens' NumberOfImagesInMosaic; other vendors use group 0019 for other things.
        if "MOSAIC" in image_type or (siemens and (0x0019, 0x100A) in header.ds):
            raise where.error(f"file {header.path.name} is a Siemens mosaic (a 2D tiling of slices, "
                              "ImageType MOSAIC), not a 3D series; convert it with a mosaic-aware tool")
    if len(headers) == 1 and int(headers[0].ds.get("NumberOfFrames", 1) or 1) == 1:
        raise where.error(f"the series is a single 2D image ({headers[0].path.name}), not a 3D volume")
    shapes = Counter((int(h.ds.get("Rows", 0)), int(h.ds.get("Columns", 0)),
                      int(h.ds.get("SamplesPerPixel", 1))) for h in headers)
    if len(shapes) > 1:
        raise where.error(f"images of different sizes in one series: {dict(shapes)} (rows, columns, samples)")
    rows, columns, samples = next(iter(shapes))
    if samples != 1:
        raise where.error(f"colour images ({samples} samples per pixel) are not supported")
    return rows, columns


def check_multiframe(headers: list[Header], frames: list[Frame], where: Where) -> None:
    """Enhanced multi-frame input must be one file whose frames share one rescale slope/intercept
    (SimpleITK applies a single pair to all frames)."""
    multi_frame = [h for h in headers if "PerFrameFunctionalGroupsSequence" in h.ds]
    if not multi_frame:
        return
    if len(headers) > 1:
        raise where.error(f"one volume spread over {len(headers)} files, {len(multi_frame)} of them "
                          "multi-frame, is not supported")
    pairs = {f.rescale for f in frames}
    if len(pairs) > 1:
        raise where.error(f"file {multi_frame[0].path.name}: rescale slope/intercept differ between frames "
                          f"({len(pairs)} distinct pairs); refusing rather than applying one frame's "
                          "values to all")


def stack_frames(frames: list[Frame], n_files: int, where: Where) -> Stack:
    """Sort the frames along the slice normal and check they form one volume with uniform spacing.

    Returns the geometry: origin = position of the first sorted frame, spacing = (column spacing,
    row spacing, median slice gap), direction columns = (r, c, n).
    """
    orientation = frames[0].orientation
    if any(np.abs(f.orientation - orientation).max() > COSINE_TOL for f in frames):
        raise where.error("slices have different orientations (ImageOrientationPatient) in one series")
    pixel_spacing = frames[0].pixel_spacing
    if any(np.abs(f.pixel_spacing - pixel_spacing).max() > 1e-4 * pixel_spacing.max() for f in frames):
        raise where.error("slices have different pixel spacings in one series")
    row, col = orientation[:3], orientation[3:]
    if (abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3
            or abs(float(row @ col)) > 1e-3):
        raise where.error("ImageOrientationPatient is not a pair of orthonormal direction cosines")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)

    distance = np.array([float(f.position @ normal) for f in frames])
    order = np.argsort(distance, kind="stable")
    frames = [frames[i] for i in order]
    distance = distance[order]
    gaps = np.diff(distance)

    n_positions = 1 + int(np.sum(gaps > SAME_POSITION_MM))
    if n_positions < len(frames):
        raise where.error(_more_than_one_volume(frames, distance, n_positions, n_files))
    if len(frames) < 2:
        raise where.error("the series is a single 2D image, not a 3D volume")

    # In-plane offsets must not drift from slice to slice (gantry tilt or a sheared stack).
    offsets = np.array([[float((f.position - frames[0].position) @ row),
                         float((f.position - frames[0].position) @ col)] for f in frames])
    if np.abs(offsets).max() > IN_PLANE_REL_TOL * float(pixel_spacing.min()) + SAME_POSITION_MM:
        raise where.error("slice positions are not stacked along the slice normal (gantry tilt or "
                          f"sheared stack: in-plane drift up to {np.abs(offsets).max():.3g} mm)")

    gap = float(np.median(gaps))
    tolerance = max(SPACING_REL_TOL * gap, SPACING_ABS_TOL_MM)
    bad = np.flatnonzero(np.abs(gaps - gap) > tolerance)
    if bad.size:
        ratios = gaps[bad] / gap
        if np.all(np.abs(ratios - np.round(ratios)) * gap <= tolerance) and np.all(np.round(ratios) >= 2):
            missing = int(np.sum(np.round(ratios) - 1))
            raise where.error(f"{missing} slice(s) missing: gap of {gaps[bad[0]]:.4g} mm after slice "
                              f"{bad[0] + 1} of {len(frames)} where the spacing is {gap:.4g} mm")
        raise where.error(f"non-uniform slice spacing: gaps from {gaps.min():.4g} to {gaps.max():.4g} mm "
                          f"(median {gap:.4g} mm, tolerance {tolerance:.3g} mm)")

    direction = np.column_stack([row, col, normal])
    return Stack(frames=frames,
                  origin=tuple(float(v) for v in frames[0].position),
                  spacing=(float(pixel_spacing[1]), float(pixel_spacing[0]), gap),
                  direction=tuple(float(v) for v in direction.ravel()))


def _more_than_one_volume(frames: list[Frame], distance: np.ndarray, n_positions: int, n_files: int) -> str:
    """Refusal text for a 4D series, naming the attributes that differ at one slice position."""
    repeated = distance[1:][np.diff(distance) <= SAME_POSITION_MM][0]
    first = [f for f, d in zip(frames, distance) if abs(d - repeated) <= SAME_POSITION_MM]
    varying = [key for i, key in enumerate(VOLUME_KEYS) if len({f.volume_keys[i] for f in first}) > 1]
    because = f" ({', '.join(varying)} differ at one position)" if varying else " (repeated slice positions)"
    return (f"more than one volume: {len(frames)} images in {n_files} file(s) at only {n_positions} "
            f"distinct slice positions{because}; a 4D series is not one 3D volume")
