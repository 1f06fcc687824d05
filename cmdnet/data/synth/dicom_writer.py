"""Write a 3D volume as one MR Image Storage series (one file per slice) with pydicom.

Geometry is carried the standard way (ImagePositionPatient of each slice, ImageOrientationPatient,
PixelSpacing, SliceThickness, SpacingBetweenSlices); the pixel data are uint16 with a per-series
RescaleSlope/RescaleIntercept, so value = stored x slope + intercept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import MRImageStorage, PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from cmdnet.data.synth.geometry import Grid
from cmdnet.data.synth.identity import FakeIdentity

SERIES_INFO = {  # phase -> (SeriesNumber, SeriesDescription, delay after contrast in s)
    "PRE": (3, "PRE t1_vibe_fs tra", 0),
    "AP": (5, "AP arterial t1_vibe_fs tra", 20),
    "HBP": (9, "HBP 20min t1_vibe_fs tra", 1200),
}


@dataclass(frozen=True)
class SeriesIds:
    """UIDs of one series; derive them with `series_ids` so they are reproducible."""

    study: str
    series: str
    frame_of_reference: str
    entropy: tuple[str, ...]   # sources for the per-slice SOPInstanceUIDs


def series_ids(seed: int, patient_id: str, phase: str) -> SeriesIds:
    """Deterministic UIDs: a hash of (seed, patient, phase); the study and frame are shared by the phases."""
    base = ("cmdnet-synth", str(seed), patient_id)
    return SeriesIds(
        study=generate_uid(entropy_srcs=[*base, "study"]),
        series=generate_uid(entropy_srcs=[*base, phase, "series"]),
        frame_of_reference=generate_uid(entropy_srcs=[*base, "frame"]),
        entropy=(*base, phase),
    )


def _ds(value: float, decimals: int) -> str:
    """A DICOM decimal string (<= 16 characters) without '-0'."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def quantise(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """uint16 stored values and the (slope, intercept) that map them back: value = stored x slope + b."""
    slope = round(float(rng.uniform(0.4, 2.0)), 4)
    intercept = float(rng.choice([0.0, -50.0]))
    stored = np.clip(np.rint((image - intercept) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, intercept


def write_series(out_dir: Path, phase: str, grid: Grid, image: np.ndarray, identity: FakeIdentity,
                 ids: SeriesIds, slice_order: str, rng: np.random.Generator) -> np.ndarray:
    """Write `image` (Z, Y, X) on `grid` as `out_dir/IM_0001.dcm ...`; return the stored-then-rescaled volume.

    slice_order: `ascending` (InstanceNumber and file name grow along the slice normal), `descending`
    (they fall along it) or `shuffled` (instance numbers ascend, file names are a random permutation).
    """
    nx, ny, nz = grid.size
    if image.shape != (nz, ny, nx):
        raise ValueError(f"image shape {image.shape} does not match grid size (x, y, z) {grid.size}")
    stored, slope, intercept = quantise(image, rng)
    d = grid.matrix
    row, col, normal = d[:, 0], d[:, 1], d[:, 2]
    origin = np.asarray(grid.origin)
    if slice_order == "descending":
        instance = [nz - k for k in range(nz)]
        file_no = instance
    elif slice_order == "shuffled":
        instance = [k + 1 for k in range(nz)]
        file_no = [int(v) + 1 for v in rng.permutation(nz)]
    elif slice_order == "ascending":
        instance = [k + 1 for k in range(nz)]
        file_no = instance
    else:
        raise ValueError(f"unknown slice order {slice_order!r}")

    series_number, description, delay = SERIES_INFO[phase]
    hh, mm = 9 + series_number // 6, (delay // 60 + 10 * series_number) % 60
    series_time = f"{hh:02d}{mm:02d}{delay % 60:02d}"
    orientation = [_ds(v, 8) for v in (*row, *col)]
    out_dir.mkdir(parents=True, exist_ok=True)
    # one dataset per series; only the per-slice elements change between files

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = identity.study_date
    ds.StudyTime = "090000"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series_time
    ds.AccessionNumber = identity.accession
    ds.Modality = "MR"
    ds.Manufacturer = "cmdnet-synth"
    ds.InstitutionName = identity.institution
    ds.ReferringPhysicianName = identity.referring_physician
    ds.StudyDescription = "MRI liver Gd-EOB-DTPA"
    ds.SeriesDescription = description
    ds.ManufacturerModelName = "Phantom 3T"
    ds.PatientName = identity.dicom_name
    ds.PatientID = identity.mrn
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = identity.sex
    ds.PatientAge = f"{identity.age_years:03d}Y"
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = ["SP", "SS"]
    ds.ScanOptions = "FS"
    ds.MRAcquisitionType = "3D"
    ds.SliceThickness = _ds(grid.spacing[2], 3)
    ds.SpacingBetweenSlices = _ds(grid.spacing[2], 3)
    ds.RepetitionTime = "3.9"
    ds.EchoTime = "1.9"
    ds.FlipAngle = "10" if phase != "HBP" else "25"
    ds.MagneticFieldStrength = "3"
    ds.ContrastBolusAgent = "" if phase == "PRE" else "Gd-EOB-DTPA"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = ids.study
    ds.SeriesInstanceUID = ids.series
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = orientation
    ds.FrameOfReferenceUID = ids.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ny
    ds.Columns = nx
    ds.PixelSpacing = [_ds(grid.spacing[1], 4), _ds(grid.spacing[0], 4)]  # [between rows, between columns]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = "600"
    ds.WindowWidth = "1200"
    ds.RescaleIntercept = _ds(intercept, 4)
    ds.RescaleSlope = _ds(slope, 4)
    ds.RescaleType = "US"
    for k in range(nz):
        position = origin + k * grid.spacing[2] * normal
        sop_uid = generate_uid(entropy_srcs=[*ids.entropy, str(instance[k])])
        meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = instance[k]
        ds.ImagePositionPatient = [_ds(v, 6) for v in position]
        ds.SliceLocation = _ds(float(position @ normal), 4)
        ds.PixelData = stored[k].tobytes()
        ds.save_as(out_dir / f"IM_{file_no[k]:04d}.dcm", enforce_file_format=True)
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
