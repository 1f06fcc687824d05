"""Stage 2: tumour crops and 16^3 patches from a converted volume and the user's tumour mask.

Geometry (all in LPS millimetres; numpy arrays in SimpleITK order `(z, y, x)`, shapes in config `[x, y, z]`):

* **Tumour box** `[lo, hi]`: the physical extent of the mask's voxels (voxel *edges*, not centres), i.e.
  the 8 corners of the index bounding box widened by half a voxel, mapped to physical space.
* **Crop box**, by `crop_mode`:
  `fit_box` (the tumour box grown by `margin_mm` on every side) or `fixed_mm` (a box of `crop_size_mm`
  (x, y, z) centred on the tumour box's centre, the same physical size for every patient). It is covered
  by an axis-aligned (LPS) grid of `crop_shape_xyz` voxels whose spacing is `box extent / crop_shape_xyz`
  per axis. The voxels tile the box exactly, so the crop's physical extent equals the box. `fit_box`
  stretches every tumour to the same number of voxels: absolute size and aspect ratio survive only through
  the fixed margin's share of the box. `fixed_mm` keeps them (a tumour twice as long covers twice as many
  voxels); a tumour larger than the box is cut, with a `CohortWarning` and `crop_cuts_tumour` set.
  Image: linear interpolation; mask: nearest neighbour. Crop voxels outside the image get the minimum of
  the image inside the crop box (before normalisation), and `crop_outside_fraction` records how many.
* **Anti-aliasing** (`antialias`): before an image is sampled on a coarser grid (crop or patches), it is
  smoothed with a Gaussian whose SD along image axis `i` is `max(0, (f_i - 1) / 2)` input voxels, where
  `f_i` = output spacing along that axis (`|| s_out * d_i ||`, `d_i` the axis' direction) / input spacing:
  the rule of scikit-image's `resize(anti_aliasing=True)`. No smoothing where the grid is not coarser.
  Without it a 24-voxel crop of a 10 cm tumour samples every fourth in-plane voxel and aliases texture.
* **Normalisation** statistics come from the original (unsmoothed) image voxels whose centres lie in the crop
  box (not the whole body, not the resampled crop): `zscore` maps `v -> (v - mean) / sd`; `percentile` maps
  `v -> (clip(v, p1, p99) - p1) / (p99 - p1)`; `none` leaves values alone. The same statistics are used for
  the patches. Both are stored as `v_norm = (v' - norm_offset) / norm_scale` with `v'` clipped for percentile.
* **Patches**: the tumour box grown by half a patch is resampled to isotropic `patch_spacing_mm`.
  Candidate patch positions lie on a regular grid of stride `patch_stride_vox`; a patch covers voxels
  `[c - 8, c + 8)` per axis and its centre (`patch_centres_mm`) is the geometric centre, i.e. continuous
  index `c - 0.5`. A candidate qualifies when its 2x2x2 central voxels are tumour (so the centre lies in
  the tumour), every voxel lies inside the image, and at least `min_patch_tumour_fraction` of its voxels
  are tumour. More than `max_patches` qualifying patches are subsampled without replacement by a generator
  seeded with `derive_seed(seed, "roi-patches", patient_id)`. When none qualifies, one patch centred on the tumour centroid is
  taken (values beyond the image edge repeat the edge value) and `patch_fallback` is set.

Values are stored as float32 (float16 would lose precision: ~3 significant digits); files are
`np.savez_compressed` archives without pickled objects, so they load with `allow_pickle=False`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from cmdnet.atomic import atomic_path
from cmdnet.config import default_field, parse_section
from cmdnet.data.grid import Grid, grid_mismatch, grid_of
from cmdnet.errors import CohortError, CohortWarning, InputError
from cmdnet.seeds import numpy_rng

NORMALISATIONS = ("zscore", "percentile", "none")
CROP_MODES = ("fit_box", "fixed_mm")
MASK_COMPONENTS = ("largest", "all", "error")  # None: the largest, with a warning
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
Normaliser = tuple[float, float, "tuple[float, float] | None"]  # (offset, scale, clip range or None)


@dataclass(frozen=True)
class RoiParams:
    """How crops and patches are made. Shapes and spacings are given in `(x, y, z)` order."""

    crop_shape_xyz: tuple[int, int, int] = default_field("roi.crop_shape_xyz")
    margin_mm: float = default_field("roi.margin_mm")
    patch_size: int = default_field("roi.patch_size")
    patch_spacing_mm: tuple[float, float, float] = default_field("roi.patch_spacing_mm")
    patch_stride_vox: int = default_field("roi.patch_stride_vox")
    max_patches: int = default_field("roi.max_patches")
    min_patch_tumour_fraction: float = default_field("roi.min_patch_tumour_fraction")
    normalisation: str = default_field("roi.normalisation")
    make_patches: bool = True       # not a config key: the workflow makes patches of the grading phase only
    seed: int = 0                   # the run's seed (config `seed`)
    crop_mode: str = default_field("roi.crop_mode")                   # fit_box | fixed_mm
    crop_size_mm: float | tuple[float, float, float] | None = default_field("roi.crop_size_mm")  # fixed_mm: (x, y, z)
    antialias: bool = default_field("roi.antialias")

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_shape_xyz", tuple(int(v) for v in self.crop_shape_xyz))
        object.__setattr__(self, "patch_spacing_mm", tuple(float(v) for v in self.patch_spacing_mm))
        problems = []
        size = self.crop_size_mm
        if size is not None:
            size = (float(size),) * 3 if isinstance(size, (int, float)) else tuple(float(v) for v in size)
            object.__setattr__(self, "crop_size_mm", size)
            if len(size) != 3 or not all(math.isfinite(v) and v > 0 for v in size):
                problems.append(f"crop_size_mm must be one positive number or 3 (x, y, z), got {self.crop_size_mm}")
        if self.crop_mode not in CROP_MODES:
            problems.append(f"crop_mode must be one of {CROP_MODES}, got {self.crop_mode!r}")
        elif self.crop_mode == "fixed_mm" and size is None:
            problems.append("crop_mode 'fixed_mm' needs crop_size_mm (mm, one number or [x, y, z])")
        if len(self.crop_shape_xyz) != 3 or min(self.crop_shape_xyz) < 1:
            problems.append(f"crop_shape_xyz must be 3 positive integers, got {self.crop_shape_xyz}")
        if len(self.patch_spacing_mm) != 3 or min(self.patch_spacing_mm) <= 0:
            problems.append(f"patch_spacing_mm must be 3 positive numbers, got {self.patch_spacing_mm}")
        if not (math.isfinite(self.margin_mm) and self.margin_mm >= 0):
            problems.append(f"margin_mm must be >= 0, got {self.margin_mm}")
        if self.patch_size < 2 or self.patch_size % 2:
            problems.append(f"patch_size must be an even integer >= 2, got {self.patch_size}")
        if self.patch_stride_vox < 1:
            problems.append(f"patch_stride_vox must be >= 1, got {self.patch_stride_vox}")
        if self.max_patches < 1:
            problems.append(f"max_patches must be >= 1, got {self.max_patches}")
        if not 0.0 <= self.min_patch_tumour_fraction <= 1.0:
            problems.append(f"min_patch_tumour_fraction must lie in [0, 1], got {self.min_patch_tumour_fraction}")
        if self.normalisation not in NORMALISATIONS:
            problems.append(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if problems:
            raise InputError("invalid ROI parameters: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RoiParams":
        """Build from the `roi` config section (plus `make_patches`, `seed`); an unknown key is refused by name."""
        return parse_section(cls, d, "roi")


# --------------------------------------------------------------------------------------------- mask


@dataclass(frozen=True)
class MaskInfo:
    """What `read_mask` found: connected lesions (26-connectivity) of the tumour label, largest first, in
    voxels, and the warnings it issued (the problem text, without the location)."""

    lesion_voxels: tuple[int, ...]
    voxel_volume_mm3: float
    kept: str            # "one" (a single lesion), "largest" or "all"
    warnings: tuple[str, ...]


def _labels_text(values: np.ndarray) -> str:
    shown = [int(v) if float(v).is_integer() else float(v) for v in values[:8]]
    return str(shown)[:-1] + (", ...]" if len(values) > 8 else "]")


def read_mask(mask_path: str | Path, grid: Grid | None, *, label: int | None = None,
              components: str | None = None, patient: str | None = None,
              phase: str | None = None) -> tuple[sitk.Image, MaskInfo]:
    """Read a tumour mask (NIfTI/NRRD, any orientation), reorient it to LPS and check it lies on `grid` (LPS;
    None skips that check, e.g. when the series itself was refused and only the mask is being checked).

    Returns a UInt8 image of 0/1 carrying exactly `grid`'s geometry and what was found. The tumour is
    `mask == label`, or with `label` None every voxel `> 0` of a mask that holds one non-zero value.
    Separate lesions (26-connected components) are resolved by `components`: None keeps the largest and
    warns (`CohortWarning`, naming the sizes), `"largest"` keeps it silently, `"all"` keeps every lesion (one
    box around all), `"error"` refuses. Raises CohortError (naming patient, phase, the mask file and the
    problem) for a missing, unreadable, non-scalar, off-grid, fractional (soft), multi-label or empty mask.
    """
    if components is not None and components not in MASK_COMPONENTS:
        raise InputError(f"mask components rule must be null or one of {MASK_COMPONENTS}, got {components!r}")
    mask_path = Path(mask_path)
    where = dict(patient=patient, phase=phase, path=mask_path)
    if not mask_path.is_file():
        raise CohortError("tumour mask file does not exist", **where)
    try:
        mask = sitk.ReadImage(str(mask_path))
    except RuntimeError as exc:
        raise CohortError(f"cannot read tumour mask: {str(exc).strip().splitlines()[-1]}", **where) from None
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise CohortError(f"tumour mask has {mask.GetNumberOfComponentsPerPixel()} components per voxel; "
                          "expected a scalar label map", **where)
    if mask.GetDimension() != 3:
        raise CohortError(f"tumour mask is {mask.GetDimension()}D; expected 3D", **where)
    mask = sitk.DICOMOrient(mask, "LPS")
    mismatch = None if grid is None else grid_mismatch(grid_of(mask), grid)
    if mismatch is not None:
        raise CohortError(f"tumour mask is not on the image grid: {mismatch}", **where)

    arr = sitk.GetArrayViewFromImage(mask)
    if arr.dtype.kind == "f":
        fractional = int(np.count_nonzero(arr != np.round(arr)))
        if fractional:
            raise CohortError(
                f"tumour mask holds fractional values ({fractional} voxels, pixel type "
                f"{mask.GetPixelIDTypeAsString()}): a soft or probability map, not a label map; threshold it "
                "(e.g. at 0.5) and save it as integer labels", **where)
    present = np.unique(arr)
    present = present[present != 0]
    if label is None:
        if len(present) > 1:
            raise CohortError(f"tumour mask holds several labels {_labels_text(present)}; set cohort.mask_label "
                              "to the tumour's label (e.g. 2 where liver = 1 and tumour = 2; per phase if they "
                              "differ)", **where)
        tumour = arr > 0
        if not tumour.any():
            raise CohortError("tumour mask has no tumour voxels (all values <= 0)", **where)
    else:
        tumour = arr == label
        if not tumour.any():
            found = _labels_text(present) if len(present) else "none (the mask is empty)"
            raise CohortError(f"tumour label {label} (cohort.mask_label) is absent from the mask; labels "
                              f"present: {found}", **where)

    binary = sitk.GetImageFromArray(tumour.astype(np.uint8))
    binary.CopyInformation(mask)
    relabel = sitk.RelabelComponentImageFilter()  # labels 1, 2, ... by decreasing size
    lesions = relabel.Execute(sitk.ConnectedComponent(binary, True))
    sizes = tuple(int(n) for n in relabel.GetSizeOfObjectsInPixels())
    voxel_mm3 = float(np.prod(mask.GetSpacing()))
    kept, notes = "one", []
    if len(sizes) > 1:
        more = ", ..." if len(sizes) > 6 else ""
        listed = (", ".join(str(n) for n in sizes[:6]) + more + " voxels ("
                  + ", ".join(f"{n * voxel_mm3 / 1000:.3g}" for n in sizes[:6]) + more + " cm3)")
        if components == "error":
            raise CohortError(f"tumour mask holds {len(sizes)} separate lesions of {listed} "
                              "(cohort.mask_components: error)", **where)
        kept = "all" if components == "all" else "largest"
        if kept == "largest":
            binary = sitk.Cast(lesions == 1, sitk.sitkUInt8)
        if components is None:
            notes.append(f"tumour mask holds {len(sizes)} separate lesions of {listed}; using the largest "
                         "(cohort.mask_components: largest accepts this silently, all crops one box around every "
                         "lesion, error refuses)")
    binary.CopyInformation(mask)
    for note in notes:
        warnings.warn(str(CohortError(note, **where)), CohortWarning, stacklevel=2)
    return binary, MaskInfo(sizes, voxel_mm3, kept, tuple(notes))


def load_mask_on_image_grid(mask_path: str | Path, image: sitk.Image, *, patient: str | None = None,
                            phase: str | None = None, label: int | None = None,
                            components: str | None = None) -> sitk.Image:
    """`read_mask` on the grid of `image` (which must already be in LPS, as the conversion stage writes it):
    the UInt8 0/1 tumour image carrying exactly `image`'s geometry."""
    binary, _ = read_mask(mask_path, grid_of(image), label=label, components=components, patient=patient,
                          phase=phase)
    binary.CopyInformation(image)
    return binary


# ------------------------------------------------------------------------------------------ geometry


def _fmt_mm(values) -> str:
    return " x ".join(f"{v:.3g}" for v in values)


def _tumour_box_mm(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Tumour box `lo, hi` (LPS mm, voxel edges), centroid (mm) and volume (mm^3) of a 0/1 mask."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    bbox = stats.GetBoundingBox(1)  # (x0, y0, z0, nx, ny, nz) in index space
    start = np.asarray(bbox[:3], dtype=float) - 0.5
    stop = start + np.asarray(bbox[3:], dtype=float)
    corners = np.array([mask.TransformContinuousIndexToPhysicalPoint(tuple(np.where(sel, stop, start)))
                        for sel in itertools.product((False, True), repeat=3)])
    return (corners.min(axis=0), corners.max(axis=0), np.asarray(stats.GetCentroid(1)),
            float(stats.GetPhysicalSize(1)))


def _resample(image: sitk.Image, origin: np.ndarray, spacing: np.ndarray, size_xyz: tuple[int, ...], *,
              interpolator: int, default: float, extrapolate_edge: bool = False) -> sitk.Image:
    """Resample `image` onto an axis-aligned LPS grid (identity direction)."""
    f = sitk.ResampleImageFilter()
    f.SetOutputOrigin(tuple(float(v) for v in origin))
    f.SetOutputSpacing(tuple(float(v) for v in spacing))
    f.SetSize(tuple(int(v) for v in size_xyz))
    f.SetOutputDirection(_IDENTITY)
    f.SetInterpolator(interpolator)
    f.SetDefaultPixelValue(float(default))
    f.SetUseNearestNeighborExtrapolator(extrapolate_edge)
    f.SetOutputPixelType(image.GetPixelID())
    return f.Execute(image)


def antialias_sigma_vox(image: sitk.Image, out_spacing: np.ndarray) -> np.ndarray:
    """Gaussian SD (input voxels, image axes x, y, z) before sampling on an LPS grid of `out_spacing` (x, y, z):
    `max(0, (f_i - 1) / 2)`, `f_i` = output spacing along image axis `i` / its input spacing."""
    d = np.asarray(image.GetDirection(), float).reshape(3, 3)
    along = np.linalg.norm(np.asarray(out_spacing, float)[:, None] * d, axis=0)
    return np.maximum(0.0, (along / np.asarray(image.GetSpacing()) - 1.0) / 2.0)


def _antialiased(image: sitk.Image, out_spacing: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> sitk.Image:
    """`image` ready to be sampled at `out_spacing` inside the LPS box `[lo, hi]`: itself when the output grid
    is not coarser, else the Gaussian-smoothed (`antialias_sigma_vox`) part of it around the box (4 SD + 2
    voxels beyond it, so the smoothing is not cut short inside the box)."""
    sigma = antialias_sigma_vox(image, out_spacing)
    if not np.any(sigma > 0):
        return image
    corners = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(np.where(sel, hi, lo)))
                        for sel in itertools.product((False, True), repeat=3)])
    size = np.asarray(image.GetSize())
    pad = np.ceil(4 * sigma).astype(int) + 2
    first = np.clip(np.floor(corners.min(axis=0)).astype(int) - pad, 0, size - 1)
    last = np.clip(np.ceil(corners.max(axis=0)).astype(int) + pad, 0, size - 1)
    part = image[int(first[0]):int(last[0]) + 1, int(first[1]):int(last[1]) + 1, int(first[2]):int(last[2]) + 1]
    smooth = gaussian_filter(sitk.GetArrayViewFromImage(part).astype(np.float32), sigma=sigma[::-1],
                             mode="nearest", truncate=4.0)
    out = sitk.GetImageFromArray(smooth)
    out.CopyInformation(part)
    return sitk.Cast(out, image.GetPixelID())


def crop_box_mm(lo: np.ndarray, hi: np.ndarray, params: "RoiParams") -> tuple[np.ndarray, np.ndarray]:
    """The crop's physical box (LPS mm) for the tumour box `[lo, hi]` (module docstring, "Crop box")."""
    if params.crop_mode == "fixed_mm":
        centre, half = (lo + hi) / 2, np.asarray(params.crop_size_mm) / 2
        return centre - half, centre + half
    return lo - params.margin_mm, hi + params.margin_mm


def crop_cut(lo: np.ndarray, hi: np.ndarray, params: "RoiParams") -> str | None:
    """Why the crop box cannot hold the whole tumour box `[lo, hi]` (only a fixed crop can be too small)."""
    box_lo, box_hi = crop_box_mm(lo, hi, params)
    if np.any(lo < box_lo - 1e-6) or np.any(hi > box_hi + 1e-6):
        return (f"the tumour box ({_fmt_mm(hi - lo)} mm) does not fit in the fixed crop "
                f"({_fmt_mm(box_hi - box_lo)} mm, roi.crop_size_mm): the crop cuts the tumour")
    return None


def tumour_box_mm(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """The physical box `lo, hi` (LPS mm, voxel edges) of a 0/1 mask's tumour voxels."""
    lo, hi, _, _ = _tumour_box_mm(mask)
    return lo, hi


def _inside_image(image: sitk.Image) -> sitk.Image:
    """A UInt8 image of ones on `image`'s grid: resampled with default 0 it marks what lies inside."""
    ones = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(image)
    return ones


def _values_in_box(image: sitk.Image, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Original image values whose voxel centres lie in the physical box `[lo, hi]` (1-D float64)."""
    corners = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(np.where(sel, hi, lo)))
                        for sel in itertools.product((False, True), repeat=3)])
    size = np.asarray(image.GetSize())
    first = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, size - 1)
    last = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, size - 1)
    arr = sitk.GetArrayViewFromImage(image)[first[2]:last[2] + 1, first[1]:last[1] + 1, first[0]:last[0] + 1]
    kz, ky, kx = np.meshgrid(*(np.arange(first[a], last[a] + 1) for a in (2, 1, 0)), indexing="ij")
    index_xyz = np.stack([kx.ravel(), ky.ravel(), kz.ravel()], axis=1).astype(float)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    phys = np.asarray(image.GetOrigin()) + (index_xyz * np.asarray(image.GetSpacing())) @ direction.T
    eps = 1e-6
    inside = np.all((phys >= lo - eps) & (phys <= hi + eps), axis=1)
    return np.asarray(arr, dtype=np.float64).ravel()[inside]


def _normaliser(values: np.ndarray, method: str, *, where: dict) -> Normaliser:
    """`(offset, scale, clip)` such that `v_norm = (clip(v) - offset) / scale`."""
    if values.size == 0:
        raise CohortError("no image voxel lies inside the tumour box; cannot normalise", **where)
    if method == "none":
        return 0.0, 1.0, None
    if method == "zscore":
        mean, sd = float(values.mean()), float(values.std())
        if not sd > 0:
            raise CohortError("image is constant inside the tumour box (SD 0); cannot z-score", **where)
        return mean, sd, None
    p1, p99 = (float(v) for v in np.percentile(values, [1.0, 99.0]))
    if not p99 > p1:
        raise CohortError(f"image percentiles p1 = p99 = {p1:g} inside the tumour box; cannot rescale", **where)
    return p1, p99 - p1, (p1, p99)


def _apply(arr: np.ndarray, norm: Normaliser) -> np.ndarray:
    offset, scale, clip = norm
    arr = np.asarray(arr, dtype=np.float64)
    if clip is None:
        return ((arr - offset) / scale).astype(np.float32)
    # Clip again after scaling: float rounding must not leave [0, 1].
    return np.clip((np.clip(arr, *clip) - offset) / scale, 0.0, 1.0).astype(np.float32)


def _box_sums(arr: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """Sum of `arr` over the cubes `[s, s + size)` for each row `s` (z, y, x) of `starts`, via an integral image."""
    integral = np.zeros(tuple(n + 1 for n in arr.shape), dtype=np.float64)
    integral[1:, 1:, 1:] = arr.astype(np.float64).cumsum(0).cumsum(1).cumsum(2)
    total = np.zeros(len(starts))
    for sel in itertools.product((0, 1), repeat=3):
        corner = starts + size * np.asarray(sel)
        sign = (-1) ** (3 - sum(sel))
        total += sign * integral[corner[:, 0], corner[:, 1], corner[:, 2]]
    return total


# ------------------------------------------------------------------------------------------ patches


def _patches(image: sitk.Image, mask: sitk.Image, lo: np.ndarray, hi: np.ndarray, centroid: np.ndarray,
             norm: Normaliser, params: RoiParams, patient: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """`(patches (n, S, S, S) float32, centres (n, 3) LPS mm, fallback)`; see the module docstring."""
    size, half, stride = params.patch_size, params.patch_size // 2, params.patch_stride_vox
    spacing = np.asarray(params.patch_spacing_mm)
    region_lo = lo - half * spacing
    region_shape = np.ceil((hi - lo) / spacing).astype(int) + size  # (x, y, z)
    origin = region_lo + spacing / 2
    source = _antialiased(image, spacing, region_lo, region_lo + region_shape * spacing) \
        if params.antialias else image
    img = sitk.GetArrayFromImage(_resample(source, origin, spacing, region_shape,
                                           interpolator=sitk.sitkLinear, default=0.0))
    tum = sitk.GetArrayFromImage(_resample(mask, origin, spacing, region_shape,
                                           interpolator=sitk.sitkNearestNeighbor, default=0))
    inside = sitk.GetArrayFromImage(_resample(_inside_image(image), origin, spacing, region_shape,
                                              interpolator=sitk.sitkNearestNeighbor, default=0))
    shape_zyx = np.asarray(img.shape)
    axes = [np.arange(half, n - half + 1, stride) for n in shape_zyx]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # c (z, y, x); patch [c-h, c+h)
    if len(centres):
        core = _box_sums(tum, centres - 1, 2) == 8
        centres = centres[core]
    if len(centres):
        starts = centres - half
        ok = ((_box_sums(inside, starts, size) == size ** 3)
              & (_box_sums(tum, starts, size) >= params.min_patch_tumour_fraction * size ** 3))
        centres = centres[ok]
    if len(centres) > params.max_patches:
        rng = numpy_rng(params.seed, "roi-patches", patient)
        centres = centres[np.sort(rng.choice(len(centres), params.max_patches, replace=False))]
    if len(centres):
        patches = np.stack([img[z - half:z + half, y - half:y + half, x - half:x + half] for z, y, x in centres])
        centres_mm = origin + (centres[:, ::-1] - 0.5) * spacing
        return _apply(patches, norm), centres_mm, False
    # Fallback: one patch whose geometric centre is the tumour centroid, edge values beyond the image.
    fb_origin = centroid - (half - 0.5) * spacing
    patch = sitk.GetArrayFromImage(_resample(source, fb_origin, spacing, (size,) * 3, interpolator=sitk.sitkLinear,
                                             default=0.0, extrapolate_edge=True))
    return _apply(patch[None], norm), centroid[None].copy(), True


# ---------------------------------------------------------------------------------------------- ROI


def extract_roi(image_path: str | Path, mask_path: str | Path, out_path: str | Path, params: RoiParams, *,
                patient: str, phase: str, mask_label: int | None = None,
                mask_components: str | None = None) -> dict[str, Any]:
    """Crop the whole tumour (+ margin, or a fixed field of view) and take tumour patches from one phase;
    write `out_path` (.npz).

    The archive holds `crop` float32 `(Z, Y, X)`, `crop_mask` uint8 `(Z, Y, X)`, `patches` float32
    `(n, S, S, S)`, `patch_centres_mm` float64 `(n, 3)` (LPS x, y, z), plus `crop_origin_mm`,
    `crop_spacing_mm` (x, y, z; the crop grid has identity LPS direction), `norm_offset`, `norm_scale`,
    `tumour_volume_mm3`, `patch_fallback`. Returns the manifest row (no identifiers beyond `patient`).
    `mask_label` and `mask_components` choose the tumour in the mask (`read_mask`). Nothing is written
    when the mask is refused.
    """
    image_path = Path(image_path)
    where = dict(patient=patient, phase=phase, path=image_path)
    try:
        image = sitk.ReadImage(str(image_path))
    except RuntimeError as exc:
        raise CohortError(f"cannot read converted volume: {str(exc).strip().splitlines()[-1]}", **where) from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CohortError("converted volume is not a scalar 3D image", **where)
    image = sitk.Cast(sitk.DICOMOrient(image, "LPS"), sitk.sitkFloat32)  # no-op for the conversion stage's output
    mask, mask_info = read_mask(mask_path, grid_of(image), label=mask_label, components=mask_components,
                                patient=patient, phase=phase)
    mask.CopyInformation(image)

    lo, hi, centroid, volume = _tumour_box_mm(mask)
    box_lo, box_hi = crop_box_mm(lo, hi, params)
    shape_xyz = np.asarray(params.crop_shape_xyz)
    crop_spacing = (box_hi - box_lo) / shape_xyz
    crop_origin = box_lo + crop_spacing / 2
    cut = crop_cut(lo, hi, params)
    if cut is not None:
        warnings.warn(str(CohortError(cut, patient=patient, phase=phase, path=mask_path)), CohortWarning,
                      stacklevel=2)

    values = _values_in_box(image, box_lo, box_hi)
    norm = _normaliser(values, params.normalisation, where=where)
    fill = float(values.min())
    source = _antialiased(image, crop_spacing, box_lo, box_hi) if params.antialias else image
    crop = sitk.GetArrayFromImage(_resample(source, crop_origin, crop_spacing, params.crop_shape_xyz,
                                            interpolator=sitk.sitkLinear, default=fill))
    crop_mask = sitk.GetArrayFromImage(_resample(mask, crop_origin, crop_spacing, params.crop_shape_xyz,
                                                 interpolator=sitk.sitkNearestNeighbor, default=0))
    inside = sitk.GetArrayFromImage(_resample(_inside_image(image), crop_origin, crop_spacing,
                                              params.crop_shape_xyz, interpolator=sitk.sitkNearestNeighbor,
                                              default=0))
    if not crop_mask.any():
        raise CohortError("the tumour crop holds no tumour voxel after resampling (crop grid too coarse?)",
                          **where)

    if params.make_patches:
        patches, centres_mm, fallback = _patches(image, mask, lo, hi, centroid, norm, params, patient)
    else:
        s = params.patch_size
        patches, centres_mm, fallback = np.zeros((0, s, s, s), np.float32), np.zeros((0, 3)), False

    arrays = dict(crop=_apply(crop, norm), crop_mask=crop_mask.astype(np.uint8),
                  patches=patches.astype(np.float32), patch_centres_mm=centres_mm.astype(np.float64),
                  crop_origin_mm=crop_origin, crop_spacing_mm=crop_spacing,
                  norm_offset=np.float64(norm[0]), norm_scale=np.float64(norm[1]),
                  tumour_volume_mm3=np.float64(volume), patch_fallback=np.bool_(fallback))
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)

    return {
        "patient_id": patient,
        "phase": phase,
        "crop_shape_zyx": [int(v) for v in crop.shape],
        "n_patches": int(len(patches)),
        "patch_fallback": bool(fallback),
        "tumour_volume_mm3": volume,
        "bbox_min_mm": [float(v) for v in lo],
        "bbox_max_mm": [float(v) for v in hi],
        "spacing_mm": [float(v) for v in crop_spacing],
        "crop_outside_fraction": float(1.0 - inside.mean()),
        "crop_tumour_fraction": float(crop_mask.mean()),
        "crop_mode": params.crop_mode,
        "crop_cuts_tumour": cut is not None,
        "mask_lesions": len(mask_info.lesion_voxels),
        "mask_lesions_kept": mask_info.kept,
        "normalisation": params.normalisation,
        "norm_offset": float(norm[0]),
        "norm_scale": float(norm[1]),
        "path": str(out_path),
    }
