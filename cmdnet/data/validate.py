"""Checking a whole cohort before a long run: `cmdnet validate`, and the workflow before its first job.

`validate_cohort(config)` reads what the workflow would read and returns every problem it finds, each
`patient P, phase X, FILE: problem` with the known parts only (the format of `cmdnet.errors.InputError`):

* the workflow config (against `schemas/config.schema.yaml`, unless `check_config=False`),
* the cohort sheet: ids, label columns and values, path columns (`cohort.read_cohort`),
* the clinical dictionary and sheet: ids, absent patients and columns, every bad cell
  (`clinical.check_clinical`),
* every patient's series, phase by phase, from the DICOM headers alone (`dicom.series_grid`: the checks
  `convert` makes before decoding pixels), and its mask against that series' grid (`roi.read_mask`: on
  the grid, scalar, not fractional, the configured tumour label present, separate lesions).

Warnings (`Problem.warning`) are input that will be used, but not as it stands (several lesions in a mask,
a tumour larger than a fixed crop); they do not make a cohort fail. No pixel of a DICOM series is decoded
(a corrupt compressed stream is found only by the conversion); masks are read whole.

Series and masks are checked in `workers` processes. Nothing here writes a file; messages hold no clinical
cell's content and no full SeriesInstanceUID.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from cmdnet.config import schema_problems
from cmdnet.errors import CmdnetError, CohortInvalid, InputError

@dataclass(frozen=True)
class Problem:
    """One problem (or, with `warning`, one warning) about the cohort, located as far as known."""

    problem: str
    patient: str | None = None
    phase: str | None = None
    path: str | None = None
    warning: bool = False

    @classmethod
    def of(cls, err: InputError, *, warning: bool = False) -> "Problem":
        return cls(err.problem, err.patient, err.phase, err.path, warning)

    def as_error(self) -> InputError:
        return InputError(self.problem, patient=self.patient, phase=self.phase, path=self.path)

    def __str__(self) -> str:
        return ("warning: " if self.warning else "") + str(self.as_error())


# ---------------------------------------------------------------------------------------------- config


def config_problems(config: Mapping[str, Any]) -> list[Problem]:
    """Every place where `config` breaks the workflow's JSON schema, one line each."""
    return [Problem(line) for line in schema_problems(config)]


def workflow_phases(config: Mapping[str, Any]) -> list[str]:
    """The phases the workflow converts: the MVI phases, then the grading phase (as `rules/common.smk`)."""
    return list(dict.fromkeys(list(config["mvi"]["phases"]) + [config["grade"]["phase"]]))


def _absolute(path: str | None, base_dir: Path) -> Path | None:
    if path is None or str(path) == "":
        return None
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else base_dir / p


# ----------------------------------------------------------------------------------------- per series


@dataclass(frozen=True)
class _SeriesTask:
    patient: str
    phase: str
    dicom: str
    series_uid: str
    mask: str
    mask_label: int | None
    mask_components: str | None
    roi: dict[str, Any] | None


def _check_series_and_mask(task: _SeriesTask) -> list[Problem]:
    """The problems of one patient's phase: its series (headers only), then its mask on that series' grid."""
    import SimpleITK as sitk

    from cmdnet.data.dicom import series_grid
    from cmdnet.data.roi import RoiParams, crop_cut, read_mask, tumour_box_mm

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    problems: list[Problem] = []
    grid = None
    if task.dicom:
        try:
            grid = series_grid(task.dicom, series_uid=task.series_uid or None, patient=task.patient,
                               phase=task.phase)
        except InputError as err:
            problems.append(Problem.of(err))
    if not task.mask:
        return problems
    where = dict(patient=task.patient, phase=task.phase, path=task.mask)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # read_mask's warnings come back in `info`
            mask, info = read_mask(task.mask, grid, label=task.mask_label, components=task.mask_components,
                                   patient=task.patient, phase=task.phase)
    except InputError as err:
        return problems + [Problem.of(err)]
    problems += [Problem(note, **where, warning=True) for note in info.warnings]
    if task.roi is not None:
        cut = crop_cut(*tumour_box_mm(mask), RoiParams.from_dict(task.roi))
        if cut is not None:
            problems.append(Problem(cut, **where, warning=True))
    return problems


def _check_guarded(task: _SeriesTask) -> list[Problem]:
    """`_check_series_and_mask`, with an unforeseen failure reported as a problem of that series instead of
    ending the whole check (by its type only: the message of a parser may quote a header value)."""
    try:
        return _check_series_and_mask(task)
    except Exception as err:  # noqa: BLE001 - one odd file must not hide every other problem
        return [Problem(f"could not be checked ({type(err).__name__}); `cmdnet convert` on this series tells more",
                        task.patient, task.phase, task.dicom or task.mask)]


def _run(tasks: list[_SeriesTask], workers: int) -> list[list[Problem]]:
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
            return list(pool.map(_check_guarded, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
    return [_check_guarded(t) for t in tasks]


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                      8))


# ---------------------------------------------------------------------------------------------- cohort


@dataclass
class CheckSummary:
    """What a check covered and found (no identifiers): for the summary line and the workflow's record."""

    n_patients: int = 0
    n_series: int = 0
    n_masks: int = 0
    n_clinical_items: int = 0
    n_problems: int = 0
    n_warnings: int = 0
    patients_with_problems: int = 0
    seconds: float = 0.0
    synthetic: bool = False

    def line(self) -> str:
        if self.synthetic:
            return "cohort.sheet is null: the workflow makes and uses the synthetic cohort; nothing to check"
        found = (f"{self.n_problems} problem{'s' if self.n_problems != 1 else ''}"
                 + (f" ({self.patients_with_problems} patient{'s' if self.patients_with_problems != 1 else ''})"
                    if self.patients_with_problems else ""))
        verdict = "cohort OK" if not self.n_problems else f"cohort NOT OK: {found}"
        return (f"{verdict}, {self.n_warnings} warning{'s' if self.n_warnings != 1 else ''}; checked "
                f"{self.n_patients} patients, {self.n_series} series (headers), {self.n_masks} masks, "
                f"{self.n_clinical_items} clinical items in {self.seconds:.1f} s")


def validate_cohort(config: Mapping[str, Any], *, workers: int | None = None, base_dir: str | Path = ".",
                    check_config: bool = True,
                    summary: CheckSummary | None = None) -> list[Problem]:
    """Every problem (and warning) of the cohort that `config` (the merged workflow config) describes.

    Relative paths in `config` are relative to `base_dir` (the workflow's working directory). The config is
    checked against the workflow's JSON schema first (`check_config`); an invalid config stops there. `summary`, when given,
    is filled with what was checked. Problems come sheet-level first, then patient by patient in sheet
    order (labels, each phase's series and mask, clinical cells). See the module docstring.
    """
    from cmdnet.data.clinical import check_clinical, load_dictionary
    from cmdnet.data.cohort import CohortColumns, mask_label_for, read_cohort
    from cmdnet.data.roi import MASK_COMPONENTS, RoiParams

    started = time.monotonic()
    summary = summary if summary is not None else CheckSummary()
    base_dir = Path(base_dir).resolve()
    problems: list[Problem] = []
    if check_config:
        problems = config_problems(config)
        if problems:
            return _finish([problems], summary, started)
    try:
        cohort_cfg = config["cohort"]
        phases = workflow_phases(config)
    except (KeyError, TypeError) as err:
        return _finish([[Problem(f"config lacks {err} (give the workflow's config.yaml as the base)")]],
                       summary, started)
    if cohort_cfg.get("sheet") is None:
        summary.synthetic = True
        return _finish([], summary, started)
    for key in ("clinical_sheet", "clinical_dictionary"):
        if not cohort_cfg.get(key):
            problems.append(Problem(f"config cohort.{key} is required when cohort.sheet is set"))
    roi_cfg = None
    try:
        roi_cfg = dict(config.get("roi") or {})
        RoiParams.from_dict(roi_cfg)
    except (InputError, TypeError) as err:
        problems.append(Problem(f"config roi: {err}"))
        roi_cfg = None
    components = cohort_cfg.get("mask_components")
    if components is not None and components not in MASK_COMPONENTS:
        problems.append(Problem(f"config cohort.mask_components must be null or one of {MASK_COMPONENTS}"))
        components = None
    try:
        labels = {phase: mask_label_for(cohort_cfg, phase) for phase in phases}
    except (TypeError, ValueError):
        problems.append(Problem("config cohort.mask_label must be an integer, null, or a mapping phase -> integer"))
        labels = {phase: None for phase in phases}

    sheet = _absolute(cohort_cfg["sheet"], base_dir)
    table, sheet_errors = read_cohort(sheet, phases=phases, columns=CohortColumns(**cohort_cfg.get("columns", {})),
                                      mvi_labels=cohort_cfg.get("mvi_labels", {"M0": 0, "M1": 1, "M2": 2}),
                                      grade_labels=cohort_cfg.get("grade_labels", {}) or {},
                                      require=("mvi",))
    problems += [Problem.of(e) for e in sheet_errors]
    ids = [] if table is None else [pid for pid in table["patient_id"] if pid]
    summary.n_patients = len(ids)

    clinical: list[Problem] = []
    if cohort_cfg.get("clinical_sheet") and cohort_cfg.get("clinical_dictionary"):
        dictionary = _absolute(cohort_cfg["clinical_dictionary"], base_dir)
        clinical = [Problem.of(e) for e in check_clinical(
            _absolute(cohort_cfg["clinical_sheet"], base_dir), dictionary, cohort_ids=list(dict.fromkeys(ids)),
            id_column=cohort_cfg.get("columns", {}).get("patient_id", "patient_id"),
            identifier_columns=cohort_cfg.get("identifier_columns", ["name"]),
            out_of_range=cohort_cfg.get("out_of_range", "error"))]
        try:
            summary.n_clinical_items = len(load_dictionary(dictionary))
        except CmdnetError:
            pass

    tasks = []
    if table is not None:
        for row in table.to_dict("records"):
            if not row["patient_id"]:
                continue
            for phase in phases:
                tasks.append(_SeriesTask(row["patient_id"], phase, row[f"{phase}_dicom"], row[f"{phase}_series_uid"],
                                         row[f"{phase}_mask"], labels[phase], components, roi_cfg))
    summary.n_series = sum(bool(t.dicom) for t in tasks)
    summary.n_masks = sum(bool(t.mask) for t in tasks)
    per_series = _run(tasks, workers or default_workers())
    return _finish([problems, [p for found in per_series for p in found], clinical], summary, started,
                   order=ids, phases=phases)


def _finish(groups: list[list[Problem]], summary: CheckSummary, started: float, *,
            order: Sequence[str] = (), phases: Sequence[str] = ()) -> list[Problem]:
    """`groups` (config and cohort sheet, series and masks, clinical sheet) in one list: problems without a
    patient first, then patient by patient in sheet order (group, phase, problems before warnings)."""
    rank = {pid: i for i, pid in enumerate(order)}
    phase_rank = {p: i for i, p in enumerate(phases)}

    def key(item: tuple[int, int, Problem]) -> tuple:
        group, i, p = item
        if p.patient is None:
            return (0, group, i)
        return (1, rank.get(p.patient, len(rank)), group, phase_rank.get(p.phase, -1), p.warning, i)

    everything = [p for _, _, p in sorted(((g, i, p) for g, found in enumerate(groups)
                                           for i, p in enumerate(found)), key=key)]
    summary.n_problems = sum(not p.warning for p in everything)
    summary.n_warnings = sum(p.warning for p in everything)
    summary.patients_with_problems = len({p.patient for p in everything if p.patient and not p.warning})
    summary.seconds = time.monotonic() - started
    return everything


def require_valid_cohort(config: Mapping[str, Any], *, workers: int | None = None, base_dir: str | Path = ".",
                         check_config: bool = True) -> CheckSummary:
    """`validate_cohort` for the workflow: raises `CohortInvalid` listing every problem (the warnings are
    printed to stderr); returns the summary when there is no problem."""
    import sys

    summary = CheckSummary()
    found = validate_cohort(config, workers=workers, base_dir=base_dir, check_config=check_config, summary=summary)
    for p in found:
        if p.warning:
            print(p, file=sys.stderr)
    errors = [p.as_error() for p in found if not p.warning]
    if errors:
        raise CohortInvalid(errors, checked=summary.line())
    return summary


def cohort_fingerprint_of(config: Mapping[str, Any], *, base_dir: str | Path = ".") -> str:
    """A digest of everything `validate_cohort` reads: the sheets' and every patient's DICOM files' and masks'
    path, size and modification time, and the config sections that decide what is checked. Cheap (file
    status only): a changed digest means the cohort must be checked again."""
    import hashlib
    import json

    from cmdnet.data.cohort import CohortColumns, PatientSource, read_cohort

    base_dir = Path(base_dir).resolve()
    cohort_cfg = config["cohort"]
    phases = workflow_phases(config)
    digest = hashlib.sha256(json.dumps({"cohort": cohort_cfg, "roi": config.get("roi"), "phases": phases},
                                       sort_keys=True, default=str).encode())
    for key in ("sheet", "clinical_sheet", "clinical_dictionary"):
        path = _absolute(cohort_cfg.get(key), base_dir)
        st = path.stat() if path is not None and path.is_file() else None
        digest.update(f"{path}\0{st and (st.st_size, st.st_mtime_ns)}\n".encode())
    table, _ = read_cohort(_absolute(cohort_cfg["sheet"], base_dir), phases=phases, require=(),
                           columns=CohortColumns(**cohort_cfg.get("columns", {})), mvi_labels={}, grade_labels={})
    for row in ([] if table is None else table.to_dict("records")):
        source = PatientSource(row["patient_id"], {}, {p: row[f"{p}_dicom"] for p in phases},
                               {p: row[f"{p}_series_uid"] for p in phases}, {p: row[f"{p}_mask"] for p in phases})
        digest.update(f"{row['patient_id']}\0{source.fingerprint(phases)}\n".encode())
    return digest.hexdigest()[:16]


def check_cohort_once(config: Mapping[str, Any], record: str | Path, *, workers: int | None = None,
                      base_dir: str | Path = ".") -> CheckSummary | None:
    """`require_valid_cohort` unless `record` shows that this very cohort (same `cohort_fingerprint_of`) passed
    before; on success writes the record (the summary and the fingerprint: counts, no identifier).

    For the workflow's DAG-building step: a cohort with problems stops the workflow before any job, with the
    list, and an unchanged cohort costs only the file status calls. Returns the summary, or None when the
    record was current (or the config describes the synthetic cohort)."""
    import json

    from cmdnet.atomic import write_text

    if config["cohort"].get("sheet") is None:
        return None
    fingerprint = cohort_fingerprint_of(config, base_dir=base_dir)
    record = Path(base_dir) / record
    try:
        if json.loads(record.read_text()).get("fingerprint") == fingerprint:
            return None
    except (OSError, ValueError):
        pass
    summary = require_valid_cohort(config, workers=workers, base_dir=base_dir)
    write_text(record, json.dumps({**summary.__dict__, "fingerprint": fingerprint}, indent=2) + "\n")
    return summary
