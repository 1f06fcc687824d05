"""Reading and validating the cohort sheet (one row per patient: labels and per-phase image paths).

Format (docs/architecture.md, "Cohort sheet"): `patient_id`, `mvi` (`M0`/`M1`/`M2`), `grade`
(`low`/`high` or Edmondson `I`..`IV`; I, II -> low, III, IV -> high), and for each phase `P`:
`P_dicom` (directory), `P_series_uid` (optional; empty = the directory holds exactly one series),
`P_mask` (NIfTI/NRRD). Relative paths are relative to the sheet's own directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cmdnet.data.sheets import describe_cell, read_sheet
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


def id_problems(df: pd.DataFrame, column: str, sheet_path: str | Path, *,
                path_safe: bool = False) -> tuple[list[str] | None, list[CohortError]]:
    """The patient ids of a sheet (`None` without an id column) and every problem with them: empty ids,
    duplicates and, with `path_safe`, ids that cannot be file names. An id that is not a plausible file name
    may be something else that slipped into the column (a name), so such ids are named by row only."""
    if column not in df.columns:
        found = ", ".join(map(repr, df.columns)) or "(none)"
        return None, [CohortError(f"no patient id column {column!r}; columns found: {found}", path=sheet_path)]
    problems = []
    empty = [_row_name(i) for i, v in enumerate(df[column]) if pd.isna(v)]
    if empty:
        problems.append(CohortError(f"empty patient id in column {column!r} at {', '.join(empty)}",
                                    path=sheet_path))
    ids = ["" if pd.isna(v) else str(v) for v in df[column]]
    if path_safe:
        unsafe = [_row_name(i) for i, v in enumerate(ids) if v and not _SAFE_ID.fullmatch(v)]
        if unsafe:
            problems.append(CohortError(
                f"patient ids at {', '.join(unsafe)} cannot be used as file names (allowed: letters, digits, "
                "'.', '_', '-'; first a letter, digit or '_')", path=sheet_path))
    rows: dict[str, list[str]] = {}
    for i, v in enumerate(ids):
        if v:
            rows.setdefault(v, []).append(_row_name(i))
    duplicated = sorted((v, r) for v, r in rows.items() if len(r) > 1)
    if duplicated:
        listed = ", ".join(f"{v} ({', '.join(r)})" if _SAFE_ID.fullmatch(v) else ", ".join(r)
                           for v, r in duplicated)
        problems.append(CohortError(f"duplicate patient ids: {listed}", path=sheet_path))
    return ids, problems


def validated_ids(df: pd.DataFrame, column: str, sheet_path: str | Path, *,
                  path_safe: bool = False) -> list[str]:
    """The patient ids of a sheet, checked: column present, no empty id, no duplicates.

    With `path_safe`, ids must also be usable as file and directory names (`results/nifti/<id>/`):
    letters, digits, `.`, `_`, `-`, not starting with `.` or `-`. Raises the first problem of `id_problems`.
    """
    ids, problems = id_problems(df, column, sheet_path, path_safe=path_safe)
    if problems:
        raise problems[0]
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


def parse_labels(raw: Iterable[object], ids: list[str], column: str, labels: Mapping[str, int], *,
                 required: bool, sheet_path: str | Path | None,
                 problems: list[CohortError]) -> pd.Series:
    """Label codes (nullable Int64) of the raw cells; each bad or missing-but-required cell adds a problem
    naming the patient (the cell is described, never repeated) and becomes `<NA>`."""
    lookup = _label_lookup(labels)
    allowed = ", ".join(map(str, labels))
    values: list[object] = []
    for pid, cell in zip(ids, raw):
        if pd.isna(cell) or str(cell).strip() == "":
            if required:
                problems.append(CohortError(f"missing {column!r} label (allowed values: {allowed})",
                                            patient=pid, path=sheet_path))
            values.append(pd.NA)
            continue
        code = lookup.get(str(cell).strip().casefold())
        if code is None:
            problems.append(CohortError(f"{column!r} label is {describe_cell(cell)}, not one of the allowed "
                                        f"values: {allowed}", patient=pid, path=sheet_path))
        values.append(pd.NA if code is None else code)
    return pd.Series(values, dtype="Int64", name=column)


def _absolute(raw: str, base: Path) -> str:
    path = Path(os.path.expanduser(raw))
    return os.path.normpath(path if path.is_absolute() else base / path)


def read_cohort(sheet_path: str | Path, *, phases: list[str], columns: CohortColumns = CohortColumns(),
                mvi_labels: Mapping[str, int] = MVI_LABELS,
                grade_labels: Mapping[str, int] = GRADE_LABELS,
                require: Iterable[str] = ("mvi",),
                check_paths: bool = False) -> tuple[pd.DataFrame | None, list[CohortError]]:
    """`load_cohort` that collects every problem instead of raising the first.

    Returns the table (None when the sheet cannot be read or has no id column) with `<NA>` for bad labels and
    `""` for empty or absent paths, and the problems in sheet order (ids, columns, then patient by patient).
    """
    sheet_path = Path(sheet_path)
    require = set(require)
    unknown = require - {"mvi", "grade"}
    if unknown:
        raise ValueError(f"require may name 'mvi' and 'grade' only, got {sorted(unknown)}")
    try:
        df = read_sheet(sheet_path)
    except CohortError as err:
        return None, [err]
    ids, problems = id_problems(df, columns.patient_id, sheet_path, path_safe=True)
    if ids is None:
        return None, problems
    base = sheet_path.resolve().parent

    label_columns = {"mvi": (columns.mvi, mvi_labels), "grade": (columns.grade, grade_labels)}
    missing = [label_columns[name][0] for name in ("mvi", "grade")
               if name in require and label_columns[name][0] not in df.columns]
    for phase in phases:
        missing += [c.format(phase=phase) for c in (columns.dicom, columns.mask)
                    if c.format(phase=phase) not in df.columns]
    if missing:
        found = ", ".join(map(repr, df.columns))
        problems.append(CohortError(f"missing columns {', '.join(map(repr, missing))}; columns found: {found}",
                                    path=sheet_path))

    out = pd.DataFrame({"patient_id": pd.Series(ids, dtype=object)})
    per_patient: list[CohortError] = []
    for name, (column, labels) in label_columns.items():
        if column in df.columns:
            out[name] = parse_labels(df[column], ids, column, labels, required=name in require,
                                     sheet_path=sheet_path, problems=per_patient).values
        else:
            out[name] = pd.Series([pd.NA] * len(ids), dtype="Int64")

    for phase in phases:
        for kind, template in (("dicom", columns.dicom), ("mask", columns.mask)):
            column = template.format(phase=phase)
            paths = []
            cells = df[column] if column in df.columns else [None] * len(ids)
            for pid, raw in zip(ids, cells):
                if column not in df.columns:
                    paths.append("")
                    continue
                if pd.isna(raw):
                    per_patient.append(CohortError(f"empty {column!r} path", patient=pid, phase=phase,
                                                   path=sheet_path))
                    paths.append("")
                    continue
                path = _absolute(str(raw), base)
                if check_paths:
                    ok = Path(path).is_dir() if kind == "dicom" else Path(path).is_file()
                    if not ok:
                        what = "DICOM directory" if kind == "dicom" else "mask file"
                        per_patient.append(CohortError(f"{what} {path} (column {column!r}) does not exist",
                                                       patient=pid, phase=phase, path=sheet_path))
                paths.append(path)
            out[f"{phase}_{kind}"] = pd.Series(paths, dtype=object)
        uid_column = columns.series_uid.format(phase=phase)
        uids = (df[uid_column].fillna("").astype(str).tolist() if uid_column in df.columns
                else [""] * len(ids))
        out[f"{phase}_series_uid"] = pd.Series(uids, dtype=object)
    order = {pid: i for i, pid in enumerate(ids)}
    problems += sorted(per_patient, key=lambda e: order.get(e.patient, -1))
    ordered = ["patient_id", "mvi", "grade"] + [f"{p}_{k}" for p in phases
                                                for k in ("dicom", "series_uid", "mask")]
    return out[ordered], problems


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

    Raises `CohortError` naming the sheet, the patient and the problem (the first of `read_cohort`'s).
    """
    table, problems = read_cohort(sheet_path, phases=phases, columns=columns, mvi_labels=mvi_labels,
                                  grade_labels=grade_labels, require=require, check_paths=check_paths)
    if problems:
        raise problems[0]
    return table


# ------------------------------------------------------------------------------------ workflow inputs


@dataclass(frozen=True)
class PatientSource:
    """One patient's row of the cohort sheet as the workflow needs it when its DAG is built.

    `labels` holds the raw label cells by canonical name (`"mvi"`, `"grade"`; `""` when empty), parsed later
    by the labels job (`labels_from_sources`) so that a bad label is reported there, not by image jobs.
    `dicom`, `series_uid` and `mask` map each phase to an absolute path (or UID) string, `""` when empty.
    """

    patient_id: str
    labels: dict[str, str]
    dicom: dict[str, str]
    series_uid: dict[str, str]
    mask: dict[str, str]

    def dicom_dirs(self, phases: Iterable[str]) -> list[str]:
        """Each phase's DICOM directory that exists (a missing one is reported by the cohort check)."""
        return [self.dicom[p] for p in phases if self.dicom.get(p) and os.path.isdir(self.dicom[p])]

    def dicom_files(self, phases: Iterable[str]) -> list[str]:
        """The files directly in each phase's DICOM directory (sorted; hidden files skipped; a missing
        directory contributes nothing: the cohort check reports it before any job runs)."""
        files: list[str] = []
        for phase in phases:
            folder = self.dicom.get(phase, "")
            if folder and os.path.isdir(folder):
                with os.scandir(folder) as entries:
                    files += sorted(e.path for e in entries if e.is_file() and not e.name.startswith("."))
        return files

    def mask_files(self, phases: Iterable[str]) -> list[str]:
        """Each phase's mask file that exists (a missing one is reported by the cohort check)."""
        return [self.mask[p] for p in phases if self.mask.get(p) and os.path.isfile(self.mask[p])]

    def fingerprint(self, phases: Iterable[str], *, masks: bool = True) -> str:
        """A digest of the path, size and modification time of every DICOM file (and mask) of this patient.

        As a job parameter it makes Snakemake rerun the patient's jobs when a file is edited in place, which
        a directory's own time does not show, without listing every file as an input."""
        phases = list(phases)
        digest = hashlib.sha256()
        for path in self.dicom_files(phases) + (self.mask_files(phases) if masks else []):
            st = os.stat(path)
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def series(self, phases: Iterable[str]) -> dict[str, dict[str, str]]:
        """`{phase: {"dicom": dir, "series_uid": uid, "mask": file}}`: the job parameters of this patient."""
        return {p: {"dicom": self.dicom.get(p, ""), "series_uid": self.series_uid.get(p, ""),
                    "mask": self.mask.get(p, "")} for p in phases}


def cohort_sources(sheet_path: str | Path, cohort_cfg: Mapping[str, Any],
                   phases: list[str]) -> dict[str, PatientSource]:
    """Every patient's row, read once when the workflow's DAG is built (sheet order).

    Only what the DAG needs is checked here: readable sheet, id column, ids usable as file names and
    unique; anything else (labels, paths, series, masks) is left to the cohort check, which runs as the
    first job and lists every problem. Raises `CohortInvalid` listing every id problem.
    """
    from cmdnet.errors import CohortInvalid

    columns = CohortColumns(**cohort_cfg.get("columns", {}))
    # Labels are not parsed here: pointing the label columns at a name no sheet has skips them.
    unlabelled = dataclasses.replace(columns, mvi="\0", grade="\0")
    table, problems = read_cohort(sheet_path, phases=phases, columns=unlabelled, require=())
    fatal = [p for p in problems if p.patient is None and "missing columns" not in p.problem]
    if table is None or fatal:
        raise CohortInvalid(fatal or problems)
    raw = read_sheet(sheet_path)
    sources = {}
    for i, row in table.iterrows():
        labels = {name: ("" if column not in raw.columns or pd.isna(raw.at[i, column]) else str(raw.at[i, column]))
                  for name, column in (("mvi", columns.mvi), ("grade", columns.grade))}
        sources[row["patient_id"]] = PatientSource(
            patient_id=row["patient_id"], labels=labels,
            dicom={p: row[f"{p}_dicom"] for p in phases}, series_uid={p: row[f"{p}_series_uid"] for p in phases},
            mask={p: row[f"{p}_mask"] for p in phases})
    return sources


def cohort_fingerprint(sources: Mapping[str, PatientSource], phases: Iterable[str]) -> str:
    """`PatientSource.fingerprint` over every patient (the cohort check's job parameter)."""
    phases = list(phases)
    digest = hashlib.sha256()
    for pid, source in sources.items():
        digest.update(f"{pid}\0{source.fingerprint(phases)}\n".encode())
    return digest.hexdigest()[:16]


def labels_from_sources(labels: Mapping[str, Mapping[str, str]], cohort_cfg: Mapping[str, Any], *,
                        require: Iterable[str] = ("mvi",)) -> pd.DataFrame:
    """`patient_id`, `mvi`, `grade` (Int64) from the raw label cells of `PatientSource.labels` by patient.

    Raises `CohortInvalid` listing every bad or missing (required) label.
    """
    from cmdnet.errors import CohortInvalid

    columns = CohortColumns(**cohort_cfg.get("columns", {}))
    ids = list(labels)
    problems: list[CohortError] = []
    out = pd.DataFrame({"patient_id": pd.Series(ids, dtype=object)})
    for name, column, mapping in (("mvi", columns.mvi, cohort_cfg.get("mvi_labels", MVI_LABELS)),
                                  ("grade", columns.grade, cohort_cfg.get("grade_labels", GRADE_LABELS))):
        cells = [labels[pid].get(name, "") or None for pid in ids]
        out[name] = parse_labels(cells, ids, column, mapping, required=name in set(require), sheet_path=None,
                                 problems=problems).values
    if problems:
        raise CohortInvalid(problems)
    return out


def mask_label_for(cohort_cfg: Mapping[str, Any], phase: str) -> int | None:
    """The tumour's label value in `phase`'s masks: `cohort.mask_label` (one value for every phase, or a
    mapping phase -> value; a phase not in the mapping, or null, means "every non-zero voxel")."""
    label = cohort_cfg.get("mask_label")
    if isinstance(label, Mapping):
        label = label.get(phase)
    return None if label is None else int(label)
