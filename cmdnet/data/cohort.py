"""Reading and validating the cohort sheet (one row per patient: labels and per-phase image paths).

Format (docs/architecture.md, "Cohort sheet"): `patient_id`, `mvi` (`M0`/`M1`/`M2`), `grade`
(`low`/`high` or Edmondson `I`..`IV`; I, II -> low, III, IV -> high), and for each phase `P`:
`P_dicom` (directory), `P_series_uid` (optional; empty = the directory holds exactly one series),
`P_mask` (NIfTI/NRRD). Relative paths are relative to the sheet's own directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cmdnet.data.sheets import read_sheet
from cmdnet.errors import CohortError
from cmdnet.labels import GRADE_CLASSES, MVI_CLASSES

MVI_LABELS: dict[str, int] = {name: code for code, name in enumerate(MVI_CLASSES)}
GRADE_LABELS: dict[str, int] = {**{name: code for code, name in enumerate(GRADE_CLASSES)}, "I": 0, "II": 0, "III": 1, "IV": 1}
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class CohortColumns:
    """Column names in the cohort sheet; `{phase}` is replaced by the phase name (e.g. `HBP_dicom`)."""

    patient_id: str = "patient_id"
    mvi: str = "mvi"
    grade: str = "grade"
    dicom: str = "{phase}_dicom"
    series_uid: str = "{phase}_series_uid"
    mask: str = "{phase}_mask"


def _row_name(i: int) -> str:
    """Spreadsheet row number of data row `i` (row 1 is the header)."""
    return f"row {i + 2}"


def validated_ids(df: pd.DataFrame, column: str, sheet_path: str | Path, *,
                  path_safe: bool = False) -> list[str]:
    """The patient ids of a sheet, checked: column present, no empty id, no duplicates.

    With `path_safe`, ids must also be usable as file and directory names (`results/nifti/<id>/`):
    letters, digits, `.`, `_`, `-`, not starting with `.` or `-`.
    """
    if column not in df.columns:
        found = ", ".join(map(repr, df.columns)) or "(none)"
        raise CohortError(f"no patient id column {column!r}; columns found: {found}", path=sheet_path)
    ids = df[column]
    empty = [_row_name(i) for i, v in enumerate(ids) if pd.isna(v)]
    if empty:
        raise CohortError(f"empty patient id in column {column!r} at {', '.join(empty)}",
                          path=sheet_path)
    ids = [str(v) for v in ids]
    if path_safe:
        unsafe = [i for i in ids if not _SAFE_ID.fullmatch(i)]
        if unsafe:
            raise CohortError(f"patient ids {', '.join(map(repr, unsafe))} cannot be used as file "
                              "names (allowed: letters, digits, '.', '_', '-'; first a letter, digit "
                              "or '_')", path=sheet_path)
    counts = pd.Series(ids).value_counts()
    duplicated = sorted(counts.index[counts > 1])
    if duplicated:
        raise CohortError(f"duplicate patient ids: {', '.join(duplicated)}", path=sheet_path)
    return ids


def patient_ids_from_sheet(sheet_path: str | Path, *, column: str = "patient_id") -> list[str]:
    """Patient ids of a cohort sheet in sheet order, validated (column present, unique, non-empty).

    Cheap enough to call when the workflow is parsed.
    """
    return validated_ids(read_sheet(sheet_path), column, sheet_path, path_safe=True)


def _label_lookup(labels: Mapping[str, int]) -> dict[str, int]:
    """Case-insensitive lookup table; refuses a mapping whose keys collide when case is ignored."""
    table: dict[str, int] = {}
    for key, value in labels.items():
        k = str(key).strip().casefold()
        if k in table and table[k] != int(value):
            raise ValueError(f"label mapping has conflicting entries for {key!r} (case-insensitive)")
        table[k] = int(value)
    return table


def _parse_labels(df: pd.DataFrame, ids: list[str], column: str, labels: Mapping[str, int],
                  required: bool, sheet_path: str | Path) -> pd.Series:
    lookup = _label_lookup(labels)
    allowed = ", ".join(map(str, labels))
    values: list[object] = []
    for pid, raw in zip(ids, df[column]):
        if pd.isna(raw):
            if required:
                raise CohortError(f"missing {column!r} label (allowed values: {allowed})",
                                  patient=pid, path=sheet_path)
            values.append(pd.NA)
            continue
        code = lookup.get(str(raw).casefold())
        if code is None:
            raise CohortError(f"{column!r} label {raw!r} is not one of the allowed values: {allowed}",
                              patient=pid, path=sheet_path)
        values.append(code)
    return pd.Series(values, dtype="Int64", name=column)


def _absolute(raw: str, base: Path) -> str:
    path = Path(os.path.expanduser(raw))
    return os.path.normpath(path if path.is_absolute() else base / path)


def load_cohort(sheet_path: str | Path, *, phases: list[str], columns: CohortColumns = CohortColumns(),
                mvi_labels: Mapping[str, int] = MVI_LABELS,
                grade_labels: Mapping[str, int] = GRADE_LABELS,
                require: Iterable[str] = ("mvi",),
                check_paths: bool = False) -> pd.DataFrame:
    """Read and validate a cohort sheet.

    Returns one row per patient (sheet order) with the canonical columns `patient_id` (str),
    `mvi` and `grade` (nullable `Int64`: the mapped label or `<NA>`), and for each phase `P`:
    `P_dicom` and `P_mask` (absolute, normalised path strings) and `P_series_uid` (str, `""` when
    empty or when the sheet has no such column).

    Labels are matched case-insensitively against `mvi_labels` / `grade_labels`. `require` names the
    labels (`"mvi"`, `"grade"`) every patient must have; the other may be empty. A label column that
    is absent from the sheet is an error only when it is required (otherwise all `<NA>`).
    With `check_paths`, every DICOM directory and mask file must exist.

    Raises `CohortError` naming the sheet, the patient and the problem.
    """
    sheet_path = Path(sheet_path)
    require = set(require)
    unknown = require - {"mvi", "grade"}
    if unknown:
        raise ValueError(f"require may name 'mvi' and 'grade' only, got {sorted(unknown)}")
    df = read_sheet(sheet_path)
    ids = validated_ids(df, columns.patient_id, sheet_path, path_safe=True)
    base = sheet_path.resolve().parent

    label_columns = {"mvi": (columns.mvi, mvi_labels), "grade": (columns.grade, grade_labels)}
    missing = [label_columns[name][0] for name in ("mvi", "grade")
               if name in require and label_columns[name][0] not in df.columns]
    for phase in phases:
        missing += [c.format(phase=phase) for c in (columns.dicom, columns.mask)
                    if c.format(phase=phase) not in df.columns]
    if missing:
        found = ", ".join(map(repr, df.columns))
        raise CohortError(f"missing columns {', '.join(map(repr, missing))}; columns found: {found}",
                          path=sheet_path)

    out = pd.DataFrame({"patient_id": pd.Series(ids, dtype=object)})
    for name, (column, labels) in label_columns.items():
        if column in df.columns:
            out[name] = _parse_labels(df, ids, column, labels, name in require, sheet_path).values
        else:
            out[name] = pd.Series([pd.NA] * len(ids), dtype="Int64")

    for phase in phases:
        for kind, template in (("dicom", columns.dicom), ("mask", columns.mask)):
            column = template.format(phase=phase)
            paths = []
            for pid, raw in zip(ids, df[column]):
                if pd.isna(raw):
                    raise CohortError(f"empty {column!r} path", patient=pid, phase=phase,
                                      path=sheet_path)
                path = _absolute(str(raw), base)
                if check_paths:
                    ok = Path(path).is_dir() if kind == "dicom" else Path(path).is_file()
                    if not ok:
                        what = "DICOM directory" if kind == "dicom" else "mask file"
                        raise CohortError(f"{what} {path} (column {column!r}) does not exist",
                                          patient=pid, phase=phase, path=sheet_path)
                paths.append(path)
            out[f"{phase}_{kind}"] = pd.Series(paths, dtype=object)
        uid_column = columns.series_uid.format(phase=phase)
        uids = (df[uid_column].fillna("").astype(str).tolist() if uid_column in df.columns
                else [""] * len(ids))
        out[f"{phase}_series_uid"] = pd.Series(uids, dtype=object)
    ordered = ["patient_id", "mvi", "grade"] + [f"{p}_{k}" for p in phases
                                                for k in ("dicom", "series_uid", "mask")]
    return out[ordered]
