"""The workflow's stages as plain functions of paths and config sections.

Each Snakemake rule's script is one call into this module, and the same functions can be called from
Python without Snakemake. Config sections are the dicts of `config.yaml` (validated by the Snakefile
against `schemas/config.schema.yaml`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .cohort import CohortColumns, load_cohort
from .tabular_io import write_parquet


def cohort_table(sheet: str | Path, cohort_cfg: dict, phases: list[str], require=("mvi",)) -> pd.DataFrame:
    """The validated cohort sheet, with the column names, labels and phases of the config."""
    return load_cohort(sheet, phases=list(phases), columns=CohortColumns(**cohort_cfg["columns"]),
                       mvi_labels=cohort_cfg["mvi_labels"], grade_labels=cohort_cfg["grade_labels"],
                       require=require)


def cohort_row(sheet: str | Path, cohort_cfg: dict, patient: str, phases: list[str]) -> pd.Series:
    table = cohort_table(sheet, cohort_cfg, phases, require=())
    rows = table[table["patient_id"] == patient]
    if rows.empty:
        raise KeyError(f"patient {patient} is not in the cohort sheet {sheet}")
    return rows.iloc[0]


def write_labels(sheet: str | Path, cohort_cfg: dict, phases: list[str], out: str | Path) -> pd.DataFrame:
    labels = cohort_table(sheet, cohort_cfg, phases)[["patient_id", "mvi", "grade"]]
    write_parquet(labels, out)
    return labels


def convert_patient(sheet: str | Path, cohort_cfg: dict, patient: str, phases: list[str],
                    out_images: list[str | Path]) -> dict[str, dict]:
    """Stage 1 for one patient: each phase's DICOM series -> `out_images[i]` (+ JSON sidecar beside it)."""
    from .dicom import convert_series

    row = cohort_row(sheet, cohort_cfg, patient, phases)
    sidecars = {}
    for phase, out in zip(phases, out_images, strict=True):
        uid = row[f"{phase}_series_uid"] or None
        sidecars[phase] = convert_series(row[f"{phase}_dicom"], out, series_uid=uid, patient=patient, phase=phase)
    return sidecars


def extract_patient_roi(sheet: str | Path, cohort_cfg: dict, roi_cfg: dict, patient: str, phases: list[str],
                        images: list[str | Path], outs: list[str | Path], *, patch_phase: str | None,
                        seed: int) -> list[dict]:
    """Stage 2 for one patient: crops of every phase, 16^3 patches of `patch_phase` only."""
    from .roi import RoiParams, extract_roi

    row = cohort_row(sheet, cohort_cfg, patient, phases)
    rows = []
    for phase, image, out in zip(phases, images, outs, strict=True):
        params = RoiParams.from_dict({**roi_cfg, "make_patches": phase == patch_phase, "seed": seed})
        rows.append(extract_roi(image, row[f"{phase}_mask"], out, params, patient=patient, phase=phase))
    return rows


def assemble(roi_files: list[str], patients: list[str], phases: list[str], out: str | Path,
             patches_of: str | None) -> pd.DataFrame:
    from .roi import assemble_dataset

    paths = {}
    for path in roi_files:
        p = Path(path)
        paths[(p.parent.name, p.stem)] = p
    ordered = {(pid, ph): paths[(pid, ph)] for pid in patients for ph in phases}
    return assemble_dataset(ordered, phases, out, with_patches_of=patches_of)


def clean_clinical_stage(clinical_sheet: str | Path, dictionary: str | Path, labels: str | Path,
                         cohort_cfg: dict, out_table: str | Path, out_report: str | Path) -> None:
    from .clinical import clean_clinical

    ids = pd.read_parquet(labels)["patient_id"].tolist()
    table, report = clean_clinical(clinical_sheet, dictionary, cohort_ids=ids,
                                   id_column=cohort_cfg["columns"]["patient_id"],
                                   identifier_columns=cohort_cfg["identifier_columns"],
                                   out_of_range=cohort_cfg["out_of_range"])
    write_parquet(table, out_table)
    with atomic_path(out_report) as tmp:
        report.to_csv(tmp, index=False)


def folds_stage(labels: str | Path, folds_cfg: dict, seed: int, out_mvi: str | Path, out_grade: str | Path) -> None:
    from .folds import make_folds, make_repeated_folds

    table = pd.read_parquet(labels).set_index("patient_id")
    write_parquet(make_folds(table["mvi"].dropna().astype(int), folds_cfg["mvi_k"], seed), out_mvi)
    grade = table["grade"].dropna().astype(int)
    write_parquet(make_repeated_folds(grade, folds_cfg["grade_k"], folds_cfg["grade_repeats"], seed), out_grade)


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def grade_fold_stage(dataset: str | Path, labels: str | Path, folds: str | Path, grade_cfg: dict, seed: int,
                     repeat: int, fold: int, out_predictions: str | Path, out_diagnostics: str | Path,
                     checkpoint: str | Path | None = None) -> pd.DataFrame:
    """Train every configured patch model of one repeat and fold: `cmdnet.grading.job.grade_fold_job`."""
    from .grading.job import grade_fold_job

    return grade_fold_job(dataset, labels, folds, grade_cfg, seed, repeat, fold, out_predictions, out_diagnostics,
                          checkpoint_path=checkpoint)
