"""What is under a directory, series by series, and what `convert` would say about each (`cmdnet series`).

Headers only (pydicom, `stop_before_pixels`): every folder that holds files is scanned like a series folder,
each series in it gets the checks `convert_series` makes before decoding pixels. The report holds the full
SeriesInstanceUID and the SeriesDescription because the user needs them to choose a series; they are meant
for the user's console only (`format_survey`), never for a file or a log (docs/cohort.md, "Identifiers").
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cmdnet.errors import DicomError
from cmdnet.data.grid import Grid, to_lps
from cmdnet.data.dicom.convert import stack_of
from cmdnet.data.dicom.headers import _SKIPPED_NAMES, Where, scan_directory, uid_digest

_DESCRIPTION_WIDTH = 32


@dataclass(frozen=True)
class SeriesReport:
    """One series of a folder (or, with `uid` None, a folder that convert refuses as a whole)."""

    folder: Path
    uid: str | None
    description: str
    modality: str
    n_files: int
    size: tuple[int, int, int] | None      # (x, y, z) of the LPS volume convert would write
    spacing: tuple[float, float, float] | None
    verdict: str                            # "ok", or convert's reason for refusing this series
    n_series_in_folder: int

    @property
    def digest(self) -> str:
        return "" if self.uid is None else uid_digest(self.uid)


def series_folders(root: str | Path) -> list[Path]:
    """`root` and every folder under it that directly holds a visible file, sorted (hidden folders skipped)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if any(not f.startswith(".") and f.upper() not in _SKIPPED_NAMES for f in files):
            found.append(Path(folder))
    return sorted(found)


def survey_folder(folder: Path) -> list[SeriesReport]:
    """The series of one folder with what `convert_series` would say about each, if it were chosen."""
    where = Where(folder, None, None)
    try:
        series, problems = scan_directory(folder, where)
    except DicomError as err:
        n_files = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        return [SeriesReport(folder, None, "", "", n_files, None, None, err.problem, 0)]
    reports = []
    for uid in sorted(series, key=uid_digest):
        headers = series[uid]
        first = headers[0].ds
        size = spacing = None
        try:
            stack, raw_size = stack_of(headers, problems, where)
            grid = to_lps(Grid(raw_size, stack.spacing, stack.origin, stack.direction))
            size, spacing, verdict = grid.size, grid.spacing, "ok"
        except DicomError as err:
            verdict = err.problem
        reports.append(SeriesReport(folder, uid, str(first.get("SeriesDescription", "") or "").strip(),
                                    str(first.get("Modality", "") or ""), len(headers), size, spacing, verdict,
                                    len(series)))
    return reports


def survey(root: str | Path, *, workers: int = 1) -> list[SeriesReport]:
    """Every series under `root` (recursively), folder by folder; `workers` processes read the headers."""
    root = Path(root)
    if not root.is_dir():
        raise DicomError("not a directory" if root.exists() else "directory does not exist", path=root)
    folders = series_folders(root)
    if workers > 1 and len(folders) > 1:
        with ProcessPoolExecutor(min(workers, len(folders))) as pool:
            per_folder = list(pool.map(survey_folder, folders))
    else:
        per_folder = [survey_folder(f) for f in folders]
    return [report for reports in per_folder for report in reports]


def format_survey(reports: list[SeriesReport], root: str | Path, *, full_uids: bool = False) -> list[str]:
    """Console lines: a header, one line per series, then a summary naming folders that need a choice."""
    root = Path(root)
    uid_title = "SERIES INSTANCE UID" if full_uids else "SERIES (digest)"
    width = max([len(uid_title)] + [len(r.uid or "") if full_uids else 16 for r in reports])
    folders = [os.path.relpath(r.folder, root) for r in reports]
    folder_width = max([6] + [len(f) for f in folders])
    lines = [f"{'FOLDER':<{folder_width}} {uid_title:<{width}} {'MOD':<4} {'FILES':>5} {'SIZE (x y z)':<13} "
             f"{'SPACING (mm)':<16} {'DESCRIPTION':<{_DESCRIPTION_WIDTH}} CONVERT"]
    for folder, r in zip(folders, reports):
        series = (r.uid if full_uids else r.digest) or "-"
        size = "x".join(map(str, r.size)) if r.size else "-"
        spacing = "x".join(f"{v:.3g}" for v in r.spacing) if r.spacing else "-"
        description = r.description if len(r.description) <= _DESCRIPTION_WIDTH \
            else r.description[:_DESCRIPTION_WIDTH - 3] + "..."
        verdict = r.verdict
        if r.uid is not None and r.n_series_in_folder > 1 and verdict == "ok":
            verdict = f"ok when chosen ({r.n_series_in_folder} series in this folder)"
        lines.append(f"{folder:<{folder_width}} {series:<{width}} {r.modality or '-':<4} {r.n_files:>5} {size:<13} "
                     f"{spacing:<16} {description or '-':<{_DESCRIPTION_WIDTH}} {verdict}")
    series_rows = [r for r in reports if r.uid is not None]
    n_ok = sum(r.verdict == "ok" for r in series_rows)
    refused = len(reports) - len(series_rows)
    lines.append(f"{len(series_rows)} series in {len({r.folder for r in series_rows})} folder(s) under {root}, "
                 f"{n_ok} convertible" + (f"; {refused} folder(s) convert refuses as a whole" if refused else "")
                 + ". Put a series' digest (or full UID) in the sheet's <phase>_series_uid column when its "
                 "folder holds several.")
    return lines
