"""Assessing new patients from MRI alone: DICOM series + tumour masks -> MVI probabilities.

For each phase of the bundle (e.g. PRE, HBP) the input goes through exactly the steps of training:
`cmdnet.data.dicom.convert_series` (LPS, float32, written to a temporary NIfTI) and `cmdnet.data.roi.extract_roi` with
the bundle's ROI parameters (the crop written to a temporary `.npz`); the crops are stacked in the bundle's
phase order into `(1, P, Z, Y, X)` and given to the members. The result holds `prob_M0`, `prob_M1`, `prob_M2`
(mean of the members' softmax probabilities), `predicted_class` (the most probable of the three MVI classes),
`p_mvi = prob_M1 + prob_M2` (any MVI) and `n_members`. A patient can be predicted M0 while `p_mvi` exceeds 0.5
(e.g. 0.44 / 0.30 / 0.26): the two answer different questions.

What is written for a user (`write_record`, the CLI) also carries `about(bundle)`: the research-use notice, the
bundle's training-cohort description (saying whether it was synthetic) and that interpretation; probabilities
are rounded there (`DIGITS` decimals), never in the records the library returns.

Only the bundle, the DICOM directories, the masks and (batch mode) the cohort sheet's path columns are read:
never a clinical sheet, never a label.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cmdnet.atomic import atomic_path
from cmdnet.product.bundle import Bundle
from cmdnet.errors import InputError

_SAFE_LABEL = re.compile(r"[A-Za-z0-9_.-]+")
DIGITS = 3
INTERPRETATION = ("predicted_class is the most probable of M0 (no MVI), M1 and M2 (docs/mvi_classes.md); "
                  "p_mvi = prob_M1 + prob_M2 is the probability of any MVI, so a patient can be predicted M0 "
                  "while p_mvi is above 0.5 (for example 0.44 / 0.30 / 0.26).")
ABOUT_KEYS = ("notice", "training_cohort", "interpretation")
# A column name no sheet has: the batch reader must ignore the label columns (see predict_cohort).
_NO_COLUMN = "\x00cmdnet-predict-ignores-labels"


@dataclass(frozen=True)
class PhaseInput:
    """One phase of one patient: a DICOM directory, optionally the SeriesInstanceUID, and the tumour mask."""

    dicom_dir: Path
    mask: Path
    series_uid: str | None = None


@dataclass
class PreparedCase:
    """A patient's model input `images` `(1, P, Z, Y, X)` and, per phase, the converted volume and ROI archive."""

    images: np.ndarray
    nifti: dict[str, Path]
    roi: dict[str, Path]


def prepare_case(bundle: Bundle, inputs: Mapping[str, PhaseInput], workdir: str | Path, *,
                 patient: str = "patient") -> PreparedCase:
    """Convert and crop every phase of `bundle` into `workdir` exactly as the workflow does.

    Raises InputError (DicomError, CohortError) naming the patient, phase and file for refused input.
    """
    from cmdnet.data.dicom import convert_series
    from cmdnet.data.roi import extract_roi

    missing = [p for p in bundle.phases if p not in inputs]
    if missing:
        raise InputError(f"the bundle's model needs phases {list(bundle.phases)}; missing: {missing}",
                         patient=patient)
    workdir = Path(workdir)
    params = bundle.roi_params()
    crops, nifti, roi = [], {}, {}
    for phase in bundle.phases:
        given = inputs[phase]
        nifti[phase] = workdir / f"{phase}.nii.gz"
        roi[phase] = workdir / f"{phase}.npz"
        convert_series(given.dicom_dir, nifti[phase], series_uid=given.series_uid or None, patient=patient,
                       phase=phase)
        extract_roi(nifti[phase], given.mask, roi[phase], params, patient=patient, phase=phase)
        with np.load(roi[phase], allow_pickle=False) as z:
            crops.append(z["crop"].astype(np.float32))
    return PreparedCase(np.stack(crops)[None], nifti, roi)


def probability_record(bundle: Bundle, probs: np.ndarray) -> dict[str, Any]:
    """`prob_<class>` for each class, `predicted_class`, `p_mvi` = P(M1) + P(M2), `n_members` from `(C,)`."""
    record: dict[str, Any] = {f"prob_{c}": float(p) for c, p in zip(bundle.classes, probs)}
    record["predicted_class"] = bundle.classes[int(np.argmax(probs))]
    record["p_mvi"] = float(probs[1:].sum())
    record["n_members"] = len(bundle.members)
    return record


def predict_case(bundle: Bundle, inputs: Mapping[str, PhaseInput], *, patient: str = "patient",
                 saliency_dir: str | Path | None = None) -> dict[str, Any]:
    """Probabilities for one patient (see the module docstring); with `saliency_dir` also Grad-CAM maps.

    Intermediate files live in a temporary directory that is removed afterwards. `patient` (a label for the
    output and file names, never a DICOM name) must be path-safe.
    """
    if not _SAFE_LABEL.fullmatch(patient):
        raise InputError(f"patient label {patient!r} may hold only letters, digits, '_', '.', '-'")
    with tempfile.TemporaryDirectory(prefix="cmdnet-predict-") as tmp:
        case = prepare_case(bundle, inputs, tmp, patient=patient)
        probs = bundle.predict_proba(case.images)[0]
        record = {"patient_id": patient, "method": bundle.method, **probability_record(bundle, probs)}
        if saliency_dir is not None:
            from cmdnet.product.saliency import write_saliency

            files = write_saliency(bundle, case, saliency_dir, patient=patient)
            record["saliency"] = {k: str(v) for k, v in files.items()}
    return record


def read_cohort_inputs(sheet: str | Path, phases: tuple[str, ...], columns=None) -> pd.DataFrame:
    """The sheet's `patient_id` and, per phase, `P_dicom`, `P_series_uid`, `P_mask` (absolute paths).

    Label columns are not read at all (a new patient has none; a malformed one must not stop a prediction).
    """
    from cmdnet.data.cohort import CohortColumns, load_cohort

    columns = columns or CohortColumns()
    # load_cohort parses a label column only when it exists; pointing it at a name no sheet has skips them.
    blind = dataclasses.replace(columns, mvi=_NO_COLUMN, grade=_NO_COLUMN)
    table = load_cohort(sheet, phases=list(phases), columns=blind, require=())
    return table.drop(columns=["mvi", "grade"])


def predict_cohort(bundle: Bundle, sheet: str | Path, *, columns=None,
                   saliency_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per patient of the cohort sheet: the probability record, or an `error` message.

    A patient whose input is refused (InputError) gets its message in `error` and empty probabilities; the
    others are still predicted. The sheet itself being unreadable raises CohortError.
    """
    table = read_cohort_inputs(sheet, bundle.phases, columns)
    rows = []
    for _, row in table.iterrows():
        pid = str(row["patient_id"])
        inputs = {p: PhaseInput(Path(row[f"{p}_dicom"]), Path(row[f"{p}_mask"]), row[f"{p}_series_uid"] or None)
                  for p in bundle.phases}
        try:
            record = predict_case(bundle, inputs, patient=pid, saliency_dir=saliency_dir)
            record.pop("saliency", None)
            record["error"] = ""
        except InputError as err:
            record = {"patient_id": pid, "method": bundle.method, "error": str(err)}
        rows.append(record)
    prob_cols = [f"prob_{c}" for c in bundle.classes]
    order = ["patient_id", "method", *prob_cols, "predicted_class", "p_mvi", "n_members", "error"]
    return pd.DataFrame(rows).reindex(columns=order)


def about(bundle: Bundle) -> dict[str, str]:
    """What every user-facing output says besides the numbers: `notice`, `training_cohort`, `interpretation`."""
    return {"notice": bundle.notice, "training_cohort": bundle.training_cohort, "interpretation": INTERPRETATION}


def rounded(record: Mapping[str, Any], digits: int = DIGITS) -> dict[str, Any]:
    """The record with its probabilities (`prob_*`, `p_mvi`) rounded to `digits` decimals for display."""
    return {k: round(v, digits) if (k.startswith("prob_") or k == "p_mvi") and isinstance(v, float) else v
            for k, v in record.items()}


def write_record(record: Mapping[str, Any] | pd.DataFrame, out: str | Path, *,
                 header: Mapping[str, str] | None = None, digits: int | None = None) -> None:
    """Write a prediction (one record or a table) as `.json` or `.csv`, chosen by the suffix, atomically.

    `header` (from `about(bundle)`) goes first: JSON keys of the record, or of the object that holds the
    batch's `patients` list; CSV columns repeated on every row (a row copied elsewhere keeps its notice).
    `digits` rounds the probabilities.
    """
    out = Path(out)
    if out.suffix.lower() not in (".json", ".csv"):
        raise InputError("output must end in .json or .csv", path=out)
    header = dict(header or {})
    table = record if isinstance(record, pd.DataFrame) else pd.DataFrame([{k: v for k, v in record.items()
                                                                            if k != "saliency"}])
    if digits is not None:
        prob_cols = [c for c in table.columns if c.startswith("prob_") or c == "p_mvi"]
        table = table.assign(**{c: table[c].astype(float).round(digits) for c in prob_cols})
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            table.assign(**header).to_csv(tmp, index=False)
        elif isinstance(record, pd.DataFrame):
            rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")
            tmp.write_text(json.dumps({**header, "patients": rows}, indent=2, default=str) + "\n")
        else:
            body = rounded(record, digits) if digits is not None else dict(record)
            tmp.write_text(json.dumps({**header, **body}, indent=2, default=str) + "\n")
