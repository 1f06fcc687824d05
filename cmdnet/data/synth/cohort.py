"""Plan and write a whole synthetic cohort (`cmdnet synth OUT_DIR`).

Layout (docs/architecture.md, "Synthetic cohort directory"):

    OUT_DIR/cohort.csv, clinical.csv, clinical_dictionary.csv
    OUT_DIR/dicom/<patient_id>/<PHASE>/IM_0001.dcm ...
    OUT_DIR/masks/<patient_id>_<PHASE>.nii.gz

Every random draw comes from a generator seeded by (seed, purpose, patient[, phase]), so a patient's
images do not change when another part of the generator changes, and the same parameters give the same
bytes. The cohort is written into a hidden sibling directory and renamed onto OUT_DIR at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from cmdnet.data.cohort import PatientSource
from cmdnet.data.synth.clinical import (
    clinical_dictionary,
    clinical_sheet,
    clinical_values,
    draw_demographics,
)
from cmdnet.data.synth.dicom_writer import series_ids, write_series
from cmdnet.data.synth.geometry import Grid, phase_grid, sample_acquisition
from cmdnet.data.synth.identity import FakeIdentity, fake_identity
from cmdnet.data.synth.params import (
    ORIENTATIONS,
    PHASES,
    SLICE_ORDERS,
    SynthParams,
    exact_counts,
    patient_ids,
)
from cmdnet.data.synth.phantom import Anatomy, render, sample_anatomy
from cmdnet.errors import InputError
from cmdnet.labels import MVI_CLASSES
from cmdnet.seeds import numpy_rng

# purposes of the seeded random streams
_LABELS, _ANATOMY, _GEOMETRY, _CLINICAL, _RENDER, _DICOM, _MISSING = range(7)


def _rng(params: SynthParams, purpose: int, *more: int) -> np.random.Generator:
    return numpy_rng(params.seed, "synthetic", purpose, *more)


@dataclass(frozen=True)
class PatientPlan:
    """Everything about one synthetic patient except the rendered pixels."""

    index: int
    patient_id: str
    mvi: int                    # 0, 1, 2 = M0, M1, M2
    high_grade: int             # 0 = low, 1 = high
    grade_text: str             # as written in the cohort sheet: low/high or Edmondson I..IV
    orientation: str
    slice_order: str
    anatomy: Anatomy
    identity: FakeIdentity
    grids: dict[str, Grid]
    clinical: dict[str, Any]


def _assign(rng: np.random.Generator, weights: tuple[float, ...], names: tuple[str, ...], n: int) -> list[str]:
    """Exactly-proportioned labels (largest remainder) in a random order."""
    labels = [name for name, count in zip(names, exact_counts(weights, n)) for _ in range(count)]
    return [labels[i] for i in rng.permutation(n)]


def _grade_text(rng: np.random.Generator, high: int, edmondson: bool) -> str:
    if not edmondson:
        return ("low", "high")[high]
    # Edmondson I..IV in the grading paper's proportions: I:II = 1:20, III:IV = 24:1
    return ("IV" if rng.uniform() < 1 / 25 else "III") if high else ("I" if rng.uniform() < 1 / 21 else "II")


def plan_cohort(params: SynthParams) -> list[PatientPlan]:
    """Draw labels, anatomy, acquisition geometry, identities and clinical values of every patient."""
    n = params.n_patients
    ids = patient_ids(n)
    rng = _rng(params, _LABELS)
    mvi = [MVI_CLASSES.index(m) for m in _assign(rng, params.mvi_prevalence, MVI_CLASSES, n)]
    high = [int(rng.uniform() < params.grade_high_given_mvi[m]) for m in mvi]
    edmondson = set(rng.permutation(n)[: round(params.edmondson_fraction * n)].tolist())
    grade_text = [_grade_text(rng, high[i], i in edmondson) for i in range(n)]
    orientations = _assign(rng, params.orientation_weights, ORIENTATIONS, n)
    orders = _assign(rng, params.slice_order_weights, SLICE_ORDERS, n)

    plans = []
    for i, pid in enumerate(ids):
        anatomy = sample_anatomy(_rng(params, _ANATOMY, i), mvi[i], high[i], params)
        geo = _rng(params, _GEOMETRY, i)
        acquisition = sample_acquisition(geo, params, orientations[i], anatomy.tumour.diameter)
        centre = anatomy.tumour.centre + np.array([geo.uniform(-15, 15), geo.uniform(-15, 15), geo.uniform(-8, 8)])
        grids = {phase: phase_grid(acquisition, centre, geo) for phase in PHASES}
        clin_rng = _rng(params, _CLINICAL, i)
        sex, age = draw_demographics(clin_rng)
        identity = fake_identity(clin_rng, sex, age)
        clinical = clinical_values(clin_rng, mvi[i], high[i], anatomy.tumour, sex, age, params.clinical_signal)
        plans.append(PatientPlan(i, pid, mvi[i], high[i], grade_text[i], orientations[i], orders[i], anatomy,
                                 identity, grids, clinical))
    return plans


def render_phase(params: SynthParams, plan: PatientPlan, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (Z, Y, X), mask uint8 (Z, Y, X)) of one patient's phase on its grid."""
    return render(plan.anatomy, phase, plan.grids[phase], _rng(params, _RENDER, plan.index, PHASES.index(phase)))


def write_mask(path: Path, mask: np.ndarray, grid: Grid) -> None:
    """The tumour mask as NIfTI on exactly the series' grid (size, origin, spacing, direction)."""
    image = sitk.GetImageFromArray(mask)
    image.SetOrigin(grid.origin)
    image.SetSpacing(grid.spacing)
    image.SetDirection(grid.direction)
    sitk.WriteImage(image, str(path), useCompression=True)


def series_paths(patient_id: str, phase: str) -> dict[str, str]:
    """Where one phase of a synthetic patient lies, relative to the cohort directory (as the sheet says)."""
    return {"dicom": f"dicom/{patient_id}/{phase}", "mask": f"masks/{patient_id}_{phase}.nii.gz"}


def synthetic_sources(root: str | Path, patients: Sequence[str], phases: Sequence[str]) -> dict[str, PatientSource]:
    """The synthetic cohort's patients as the workflow's DAG needs them, known before the cohort is written."""
    sources = {}
    for pid in patients:
        paths = {phase: series_paths(pid, phase) for phase in phases}
        sources[pid] = PatientSource(pid, {}, {p: str(Path(root) / paths[p]["dicom"]) for p in phases},
                                     {p: "" for p in phases}, {p: str(Path(root) / paths[p]["mask"]) for p in phases})
    return sources


def _cohort_row(plan: PatientPlan) -> dict[str, str]:
    row = {"patient_id": plan.patient_id, "mvi": MVI_CLASSES[plan.mvi], "grade": plan.grade_text}
    for phase in PHASES:
        paths = series_paths(plan.patient_id, phase)
        row[f"{phase}_dicom"] = paths["dicom"]
        row[f"{phase}_series_uid"] = ""
        row[f"{phase}_mask"] = paths["mask"]
    return row


def cohort_layout(root: Path) -> dict[str, Path]:
    """Where a synthetic cohort written to `root` keeps its parts (docs/architecture.md)."""
    root = Path(root)
    return {"sheet": root / "cohort.csv", "clinical_sheet": root / "clinical.csv",
            "dictionary": root / "clinical_dictionary.csv", "dicom": root / "dicom", "masks": root / "masks"}


def _write_into(root: Path, params: SynthParams) -> None:
    plans = plan_cohort(params)
    layout = cohort_layout(root)
    layout["masks"].mkdir()
    for plan in plans:
        for phase in PHASES:
            image, mask = render_phase(params, plan, phase)
            grid = plan.grids[phase]
            paths = series_paths(plan.patient_id, phase)
            write_series(root / paths["dicom"], phase, grid, image, plan.identity,
                         series_ids(params.seed, plan.patient_id, phase), plan.slice_order,
                         _rng(params, _DICOM, plan.index, PHASES.index(phase)))
            write_mask(root / paths["mask"], mask, grid)
    csv = {"index": False, "lineterminator": "\n"}
    pd.DataFrame([_cohort_row(p) for p in plans]).to_csv(layout["sheet"], **csv)
    sheet = clinical_sheet([p.clinical for p in plans], [p.patient_id for p in plans],
                           [p.identity.full_name for p in plans], params.missing_rate, _rng(params, _MISSING))
    sheet.to_csv(layout["clinical_sheet"], **csv)
    clinical_dictionary().to_csv(layout["dictionary"], **csv)


def write_cohort(out_dir: Path, params: SynthParams) -> Path:
    """Write the synthetic cohort to `out_dir` (absent or empty) and return `out_dir / "cohort.csv"`.

    Nothing appears under `out_dir` until the whole cohort is written (temporary sibling, then rename).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError("refusing to write a synthetic cohort into an existing non-empty path; "
                         "choose a new directory or remove this one", path=out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _write_into(tmp, params)
        os.chmod(tmp, 0o755)
        try:
            os.replace(tmp, out_dir)  # replaces an empty out_dir; fails if something appeared there meanwhile
        except OSError as err:
            raise InputError(f"could not move the finished cohort into place: {err}", path=out_dir) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "cohort.csv"
