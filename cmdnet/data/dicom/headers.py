"""Reading the headers of a DICOM directory once (pydicom, `stop_before_pixels`) and choosing a series.

Every file must be readable DICOM; a file whose native pixel data is shorter than
Rows * Columns * SamplesPerPixel * NumberOfFrames * BitsAllocated / 8 bytes is marked truncated.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from cmdnet.errors import DicomError

_PIXEL_DATA_TAG = (0x7FE0, 0x0010)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SKIPPED_NAMES = {"DICOMDIR"}
_DIGEST = re.compile(r"[0-9a-fA-F]{16}")


def uid_digest(uid: str) -> str:
    """The name of a series wherever a file or a log may keep it: the first 16 hex digits of the SHA-256 of
    its SeriesInstanceUID (UIDs can embed scanner serial numbers and acquisition times). Accepted wherever a
    SeriesInstanceUID is asked for (`choose_series`), so the full UID never has to be written down."""
    return hashlib.sha256(str(uid).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SeriesInfo:
    """Summary of one series in a directory. `uid` is the full SeriesInstanceUID: show it on the user's
    console only, write `digest` anywhere else."""

    uid: str
    n_files: int
    n_frames: int
    modality: str | None
    rows: int | None
    columns: int | None

    @property
    def digest(self) -> str:
        return uid_digest(self.uid)


@dataclass(frozen=True)
class Header:
    """One file and its header (pydicom Dataset read with `stop_before_pixels`)."""

    path: Path
    ds: pydicom.Dataset


class Where:
    """Location of the series for error messages."""

    def __init__(self, dicom_dir: Path, patient: str | None, phase: str | None):
        self.dicom_dir, self.patient, self.phase = dicom_dir, patient, phase

    def error(self, problem: str) -> DicomError:
        return DicomError(problem, patient=self.patient, phase=self.phase, path=self.dicom_dir)


def _pixel_data_problem(fp: Any, ds: pydicom.Dataset, file_size: int) -> str | None:
    """Why the pixel data after the header is missing or truncated, or None when it looks complete.

    `fp` stands where pydicom stopped (`stop_before_pixels` rewinds to the start of the PixelData tag).
    Native data must hold Rows * Columns * SamplesPerPixel * NumberOfFrames * BitsAllocated / 8 bytes;
    encapsulated (compressed) data has no declared length, so its completeness is left to the decoder.
    """
    little = ds.original_encoding[1] if ds.original_encoding[1] is not None else True
    implicit = ds.original_encoding[0] if ds.original_encoding[0] is not None else False
    endian = "<" if little else ">"
    head = fp.read(8)
    if len(head) < 8:
        return "no pixel data (file truncated or not an image)"
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group, element) != _PIXEL_DATA_TAG:
        return "no pixel data (file truncated or not an image)"
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
    else:
        rest = fp.read(4)
        if len(rest) < 4:
            return "pixel data truncated"
        (length,) = struct.unpack(endian + "I", rest)
    if length == _UNDEFINED_LENGTH:
        return None
    available = file_size - fp.tell()
    try:
        expected = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
                    * int(ds.get("NumberOfFrames", 1) or 1) * int(ds.BitsAllocated)) // 8
    except (AttributeError, TypeError, ValueError):
        return "image header lacks Rows/Columns/BitsAllocated"
    if length < expected or available < length:
        return f"pixel data truncated ({min(length, available)} of {expected} bytes)"
    return None


def read_header(path: Path, where: Where) -> tuple[Header, str | None]:
    """Header of one file and, if any, why its pixel data is unusable. Non-DICOM files are refused."""
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            problem = _pixel_data_problem(fp, ds, path.stat().st_size)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, struct.error) as err:
        raise where.error(f"file {path.name} is not readable DICOM ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    if "SeriesInstanceUID" not in ds:
        raise where.error(f"file {path.name} has no SeriesInstanceUID (not a DICOM image, or corrupt)")
    return Header(path, ds), problem


def scan_directory(dicom_dir: Path, where: Where) -> tuple[dict[str, list[Header]], dict[Path, str]]:
    """Headers of every file in `dicom_dir` (not recursive; hidden files and DICOMDIR skipped),
    grouped by SeriesInstanceUID, and the pixel-data problems found per file."""
    if not dicom_dir.exists():
        raise where.error("DICOM directory does not exist")
    if not dicom_dir.is_dir():
        raise where.error("not a directory")
    try:
        paths = sorted(p for p in dicom_dir.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name.upper() not in _SKIPPED_NAMES)
    except OSError as err:
        raise where.error(f"directory cannot be read ({err.strerror})") from None
    if not paths:
        raise where.error(_nothing_here(dicom_dir))
    series: dict[str, list[Header]] = {}
    problems: dict[Path, str] = {}
    for path in paths:
        header, problem = read_header(path, where)
        series.setdefault(str(header.ds.SeriesInstanceUID), []).append(header)
        if problem is not None:
            problems[path] = problem
    return series, problems


def _nothing_here(dicom_dir: Path) -> str:
    """Why a directory without files cannot be a series: empty, or a study/patient folder above the series."""
    n_files, folders = 0, 0
    for _, dirs, files in os.walk(dicom_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        visible = [f for f in files if not f.startswith(".") and f.upper() not in _SKIPPED_NAMES]
        n_files += len(visible)
        folders += bool(visible)
    if not n_files:
        return "DICOM directory is empty"
    return (f"no files directly in this directory, but {n_files} in {folders} sub-folder(s): a study or patient "
            "folder, not a series folder; give the folder that holds the series' files (`cmdnet series DIR` "
            "lists the series under it)")


def list_series(dicom_dir: str | Path) -> list[SeriesInfo]:
    """The series found in `dicom_dir`, sorted by UID. Raises DicomError if a file is not DICOM."""
    dicom_dir = Path(dicom_dir)
    series, _ = scan_directory(dicom_dir, Where(dicom_dir, None, None))
    infos = []
    for uid in sorted(series):
        headers = series[uid]
        first = headers[0].ds
        infos.append(SeriesInfo(
            uid=uid, n_files=len(headers),
            n_frames=sum(int(h.ds.get("NumberOfFrames", 1) or 1) for h in headers),
            modality=first.get("Modality"), rows=_int_or_none(first.get("Rows")),
            columns=_int_or_none(first.get("Columns"))))
    return infos


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def choose_series(series: dict[str, list[Header]], series_uid: str | None, where: Where) -> str:
    """The UID of the chosen series: `series_uid` (a full SeriesInstanceUID or its `uid_digest`), or the only
    series. Messages name series by digest only."""
    if series_uid is not None:
        wanted = str(series_uid).strip()
        by_digest = {uid_digest(uid): uid for uid in series}
        if wanted in series:
            return wanted
        if _DIGEST.fullmatch(wanted) and wanted.lower() in by_digest:
            return by_digest[wanted.lower()]
        shown = wanted.lower() if _DIGEST.fullmatch(wanted) else uid_digest(wanted)
        raise where.error(f"the chosen series (digest {shown}) is not in this directory, which holds "
                          f"{_digest_list(series)}; `cmdnet series DIR` lists them")
    if len(series) > 1:
        raise where.error(f"{len(series)} series found and none chosen: {_digest_list(series)}; run `cmdnet "
                          "series DIR` to see them and put the chosen one's digest (or full SeriesInstanceUID) "
                          "in the sheet's <phase>_series_uid column")
    return next(iter(series))


def _digest_list(series: dict[str, list[Header]]) -> str:
    items = sorted((uid_digest(uid), len(h)) for uid, h in series.items())
    return ", ".join(f"series {digest} ({n} files)" for digest, n in items)
