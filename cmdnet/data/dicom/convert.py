"""Reading the pixels of a validated stack with SimpleITK, and writing the NIfTI + JSON sidecar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from cmdnet.atomic import atomic_path
from cmdnet.errors import InputError
from cmdnet.data.dicom.geometry import Stack, check_images, check_multiframe, first_item, frames_of, stack_frames
from cmdnet.data.dicom.headers import Header, Where, choose_series, scan_directory, uid_digest
from cmdnet.data.grid import Grid, to_lps

# Sidecar allow-list: acquisition parameters that the scanner sets (numbers and defined terms). Nothing
# outside this list is ever copied. Fields that a site types in (SeriesDescription, ProtocolName,
# ContrastBolusAgent, BodyPartExamined, StudyDescription, ...) are free text that can hold anything,
# including a name, and are left out on purpose.
SIDECAR_ATTRIBUTES = (
    "Modality", "Manufacturer", "ManufacturerModelName", "MagneticFieldStrength", "RepetitionTime",
    "EchoTime", "InversionTime", "FlipAngle", "SliceThickness", "SpacingBetweenSlices", "PixelSpacing",
    "ScanningSequence", "SequenceVariant", "MRAcquisitionType", "EchoTrainLength", "PixelBandwidth",
    "ImageType", "KVP", "ConvolutionKernel", "Rows", "Columns", "BitsStored", "PhotometricInterpretation",
)


def read_pixels(stack: Stack, size: tuple[int, int, int], where: Where) -> sitk.Image:
    """SimpleITK reads the pixels of the validated stack, as float32 with rescale applied (GDCM applies each
    file's slope/intercept; enhanced files were checked to share one). `size` is the (x, y, z) size the
    headers promise. The geometry is set from the header values, not taken from the reader."""
    paths = sorted({f.path for f in stack.frames})
    try:
        if stack.frames[0].frame is None:
            reader = sitk.ImageSeriesReader()
            reader.SetImageIO("GDCMImageIO")
            reader.SetFileNames([str(f.path) for f in stack.frames])
            reader.SetOutputPixelType(sitk.sitkFloat32)
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(paths[0]), sitk.sitkFloat32, imageIO="GDCMImageIO")
            array = sitk.GetArrayViewFromImage(image)
            if array.shape[0] != len(stack.frames):
                raise where.error(f"file {paths[0].name}: decoded {array.shape[0]} frames, header "
                                  f"describes {len(stack.frames)}")
            image = sitk.GetImageFromArray(array[[f.frame for f in stack.frames]])
    except RuntimeError as err:
        message = str(err).strip().splitlines()
        raise where.error(f"pixel data cannot be decoded ({message[-1] if message else 'SimpleITK error'})") \
            from None
    if image.GetDimension() != 3 or image.GetSize() != tuple(size):
        raise where.error(f"decoded image size {image.GetSize()} differs from the headers' {tuple(size)}")
    image.SetOrigin(stack.origin)
    image.SetSpacing(stack.spacing)
    image.SetDirection(stack.direction)
    return image


def _checked_stack(dicom_dir: Path, series_uid: str | None,
                   where: Where) -> tuple[str, list[Header], Stack, tuple[int, int, int]]:
    """Every refusal that the headers alone can justify; returns the chosen UID, its headers, the sorted
    stack and the (x, y, z) size the pixels must have."""
    series, problems = scan_directory(dicom_dir, where)
    uid = choose_series(series, series_uid, where)
    stack, size = stack_of(series[uid], problems, where)
    return uid, series[uid], stack, size


def stack_of(headers: list[Header], problems: dict[Path, str], where: Where) -> tuple[Stack, tuple[int, int, int]]:
    """The checked stack of one series' headers and the (x, y, z) size of its volume (before LPS)."""
    rows, columns = check_images(headers, problems, where)
    frames = [frame for header in headers for frame in frames_of(header, where)]
    stack = stack_frames(frames, len(headers), where)
    check_multiframe(headers, frames, where)
    return stack, (columns, rows, len(frames))


def _load(dicom_dir: str | Path, series_uid: str | None, patient: str | None,
          phase: str | None) -> tuple[sitk.Image, str, list[Header], Stack]:
    dicom_dir = Path(dicom_dir)
    where = Where(dicom_dir, patient, phase)
    uid, headers, stack, size = _checked_stack(dicom_dir, series_uid, where)
    image = read_pixels(stack, size, where)
    return sitk.DICOMOrient(image, "LPS"), uid, headers, stack


def series_grid(dicom_dir: str | Path, *, series_uid: str | None = None, patient: str | None = None,
                phase: str | None = None) -> Grid:
    """The grid that `convert_series` would write for this series (LPS), from the headers alone.

    Makes every check `convert_series` makes except decoding the pixels (a corrupt compressed stream is
    found only by the conversion). Raises `DicomError` like `convert_series`.
    """
    dicom_dir = Path(dicom_dir)
    _, _, stack, size = _checked_stack(dicom_dir, series_uid, Where(dicom_dir, patient, phase))
    return to_lps(Grid(size, stack.spacing, stack.origin, stack.direction))


def read_series(dicom_dir: str | Path, *, series_uid: str | None = None, patient: str | None = None,
                phase: str | None = None) -> sitk.Image:
    """The validated 3D volume of one series: LPS orientation, float32, rescale slope/intercept applied.

    `series_uid` chooses the series; without it the directory must hold exactly one. `patient` and
    `phase` only name the input in error messages. Raises `DicomError` when the series is not one
    correct 3D volume (see the module docstring).
    """
    return _load(dicom_dir, series_uid, patient, phase)[0]


def sidecar_path(out_path: str | Path) -> Path:
    """`X.nii.gz` or `X.nii` -> `X.json` beside it."""
    out_path = Path(out_path)
    name = out_path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return out_path.with_name(name[: -len(suffix)] + ".json")
    raise InputError("output must end in .nii.gz or .nii", path=out_path)


def convert_series(dicom_dir: str | Path, out_path: str | Path, *, series_uid: str | None = None,
                   patient: str | None = None, phase: str | None = None,
                   out_sidecar: str | Path | None = None) -> dict[str, Any]:
    """Convert one series to `out_path` (NIfTI) and its sidecar (`out_sidecar`, by default
    `sidecar_path(out_path)`), both atomically.

    Returns the sidecar: acquisition parameters from an allow-list (`SIDECAR_ATTRIBUTES`), the chosen
    SeriesInstanceUID's digest, `n_files`, and the output grid `size` (x, y, z), `spacing` (mm), `origin` (mm),
    `direction` (row-major 3x3), `orientation` ("LPS"). No identifying attribute is ever copied.
    """
    json_path = Path(out_sidecar) if out_sidecar is not None else sidecar_path(out_path)
    image, uid, headers, stack = _load(dicom_dir, series_uid, patient, phase)
    sidecar = _sidecar(image, uid, headers, stack)
    text = json.dumps(sidecar, indent=2) + "\n"
    with atomic_path(out_path) as nifti_tmp, atomic_path(json_path) as json_tmp:
        sitk.WriteImage(image, str(nifti_tmp), useCompression=True)
        json_tmp.write_text(text)
    return sidecar


def _sidecar(image: sitk.Image, uid: str, headers: list[Header], stack: Stack) -> dict[str, Any]:
    ds = headers[0].ds
    groups = [item for item in (first_item(ds.get("SharedFunctionalGroupsSequence")),
                                first_item(ds.get("PerFrameFunctionalGroupsSequence"))) if item is not None]
    sidecar: dict[str, Any] = {}
    for keyword in SIDECAR_ATTRIBUTES:
        value = _find(ds, groups, keyword)
        if value is not None:
            sidecar[keyword] = value
    if "EchoTime" not in sidecar:  # enhanced MR keeps it in MREchoSequence
        echo = _find(ds, groups, "EffectiveEchoTime")
        if echo is not None:
            sidecar["EchoTime"] = echo
    sidecar.update({
        # UIDs can embed scanner serials and acquisition times: keep only a digest to tell series apart
        "series_uid_sha256": uid_digest(uid),
        "n_files": len(headers),
        "n_slices": len(stack.frames),
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "orientation": "LPS",
        "dtype": "float32",
        "rescale_applied": True,
    })
    return sidecar


def _find(ds: pydicom.Dataset, groups: list[pydicom.Dataset], keyword: str) -> Any:
    """`keyword`'s JSON value at the top level, else in one level of functional-group sequences."""
    if keyword in ds:
        return _json_value(ds[keyword].value)
    for group in groups:
        for element in group:
            if element.VR == "SQ" and element.value and keyword in element.value[0]:
                return _json_value(element.value[0][keyword].value)
    return None


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bytes, pydicom.Sequence)):
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        items = [_json_value(v) for v in value]
        return items if all(v is not None for v in items) else None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    text = str(value).strip()
    if text == "":
        return None
    return text
