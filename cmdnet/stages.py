"""The workflow's stages: one function per Snakemake rule, the single seam between workflow and library.

Each stage takes the rule's named inputs, its named outputs (prefixed `out_`) and its params as keyword arguments:
the rule decides every file name, the library writes exactly the paths it is given. A workflow script is two
lines, `run_job(<stage>, snakemake)`; from Python, call a stage with plain paths and config sections.

Heavy libraries are imported inside the stages, so a job pays only for what it uses, and a training job claims
its GPU before torch is imported.
"""

from __future__ import annotations

import inspect
import itertools
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cmdnet.errors import CmdnetError
from cmdnet.logs import tee_output

VERBOSE_ENV = "CMDNET_VERBOSE"


# ---------------------------------------------------------------- the seam


def job_arguments(job: Any) -> dict[str, Any]:
    """A Snakemake job's named inputs, `out_`-prefixed named outputs and params as one keyword dict."""
    def files(items) -> dict[str, Any]:
        return {name: [str(v) for v in value] if isinstance(value, list) else str(value)
                for name, value in items.items()}
    return {**files(job.input), **{f"out_{k}": v for k, v in files(job.output).items()}, **dict(job.params.items())}


def run_job(stage: Callable[..., Any], job: Any) -> None:
    """Run `stage` for a Snakemake job (`snakemake` in a rule's script): log to the job's log file and the console;
    an input or config problem ends the job with its one-line message and exit status 2, without a traceback
    (set CMDNET_VERBOSE=1 for one)."""
    tee_output(job.log[0])
    kwargs = job_arguments(job)
    if "threads" in inspect.signature(stage).parameters:
        kwargs["threads"] = job.threads
    try:
        stage(**kwargs)
    except CmdnetError as err:
        if os.environ.get(VERBOSE_ENV):
            traceback.print_exc()
        print(f"{ERROR_PREFIX}{err}", file=sys.stderr, flush=True)
        sys.exit(2)


ERROR_PREFIX = "cmdnet: error: "


def job_errors(log_dir: str | Path, since: float) -> list[tuple[str, str]]:
    """(log file, message) of every job log under `log_dir` written after `since` (a time stamp) that ends with a
    cmdnet error line: what `run_job` printed for a job that stopped on an input or config problem."""
    found = []
    for log in sorted(Path(log_dir).rglob("*.log")):
        if log.stat().st_mtime < since:
            continue
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(ERROR_PREFIX)]
        if lines:
            found.append((str(log), lines[-1][len(ERROR_PREFIX):]))
    return found


def _cohort_table(sheet: str | Path, cohort: Mapping, phases: Sequence[str], require=("mvi",)):
    from cmdnet.data.cohort import CohortColumns, load_cohort

    return load_cohort(sheet, phases=list(phases), columns=CohortColumns(**cohort["columns"]),
                       mvi_labels=cohort["mvi_labels"], grade_labels=cohort["grade_labels"], require=require)


# ---------------------------------------------------------------- cohort


def synthetic_cohort(*, synthetic: Mapping, out_sheet: str, out_clinical_sheet: str, out_dictionary: str,
                     out_dicom: str, out_masks: str) -> None:
    """The built-in synthetic cohort. Its layout is fixed (docs/architecture.md): the outputs must name it."""
    from cmdnet.data.synth import SynthParams, write_cohort
    from cmdnet.data.synth.cohort import cohort_layout

    root = Path(out_sheet).parent
    given = {"sheet": out_sheet, "clinical_sheet": out_clinical_sheet, "dictionary": out_dictionary,
             "dicom": out_dicom, "masks": out_masks}
    layout = cohort_layout(root)
    wrong = {k: v for k, v in given.items() if Path(v) != layout[k]}
    if wrong:
        raise ValueError(f"the synthetic cohort is written as {', '.join(f'{k}={layout[k]}' for k in wrong)}, "
                         f"not {wrong}")
    params = SynthParams.from_dict(dict(synthetic))
    write_cohort(root, params)
    print(f"synthetic cohort of {params.n_patients} patients written to {root}")


def cohort_labels(*, cohort: Mapping, out_labels: str, sheet: str | None = None, phases: Sequence[str] = (),
                  label_cells: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """The labels table, from the cohort sheet (the synthetic cohort, written by the workflow) or from each
    patient's raw label cells read when the DAG was built (a user's cohort: editing a column no job uses then
    reruns nothing); every bad label is listed at once."""
    from cmdnet.data.cohort import labels_from_sources
    from cmdnet.data.sheets import write_parquet

    if (sheet is None) == (label_cells is None):
        raise ValueError("give the cohort sheet or the patients' label cells, not both")
    if label_cells is not None:
        labels = labels_from_sources(label_cells, cohort)
    else:
        labels = _cohort_table(sheet, cohort, phases)[["patient_id", "mvi", "grade"]]
    write_parquet(labels, out_labels)
    print(f"{len(labels)} patients; MVI counts {labels['mvi'].value_counts().sort_index().to_dict()}; "
          f"grade counts {labels['grade'].value_counts().sort_index().to_dict()}")


def clean_clinical(*, labels: str, clinical_sheet: str, dictionary: str, cohort: Mapping, out_table: str,
                   out_missingness: str) -> None:
    from cmdnet.data.clinical import clean_clinical as clean
    from cmdnet.data.sheets import write_csv, write_parquet
    from cmdnet.labels import read_labels

    table, report = clean(clinical_sheet, dictionary, cohort_ids=read_labels(labels).index.tolist(),
                          id_column=cohort["columns"]["patient_id"], identifier_columns=cohort["identifier_columns"],
                          out_of_range=cohort["out_of_range"])
    write_parquet(table, out_table)
    write_csv(report, out_missingness)
    print(f"{len(table)} patients, {table.shape[1] - 1} clinical items")


def make_folds(*, labels: str, folds: Mapping, seed: int, out_mvi: str, out_mvi_inner: str, out_grade: str) -> None:
    """The MVI partitions (R x K folds and each test fold's inner validation split) and the grading folds."""
    from cmdnet.data.folds import make_partitions, make_repeated_folds
    from cmdnet.data.sheets import write_parquet
    from cmdnet.labels import outcome

    mvi = make_partitions(outcome(labels, "mvi"), folds["mvi_k"], folds["mvi_repeats"],
                          folds["inner_validation_fraction"], seed)
    write_parquet(mvi.folds, out_mvi)
    write_parquet(mvi.inner, out_mvi_inner)
    write_parquet(make_repeated_folds(outcome(labels, "grade"), folds["grade_k"], folds["grade_repeats"], seed),
                  out_grade)


# ---------------------------------------------------------------- images


def dicom_to_nifti(*, patient: str, series: Mapping[str, Mapping[str, str]], phases: Sequence[str],
                   out_images: Sequence[str], out_sidecars: Sequence[str], files_digest: str = "") -> None:
    """Each phase's DICOM series of one patient (`series[phase]`: `dicom` directory, `series_uid` or "") ->
    `out_images[i]` (NIfTI, LPS) + `out_sidecars[i]` (JSON). `files_digest` (sizes and times of the patient's
    files) is there only so that Snakemake reruns the job when a file is replaced in place."""
    from cmdnet.data.dicom import convert_series

    for phase, image, sidecar in zip(phases, out_images, out_sidecars, strict=True):
        meta = convert_series(series[phase]["dicom"], image, series_uid=series[phase]["series_uid"] or None,
                              patient=patient, phase=phase, out_sidecar=sidecar)
        print(f"patient {patient} phase {phase}: size {meta['size']} spacing {meta['spacing']}")


def extract_roi(*, patient: str, series: Mapping[str, Mapping[str, str]], masks: Mapping, roi: Mapping,
                phases: Sequence[str], patch_phase: str | None, seed: int, images: Sequence[str],
                out_rois: Sequence[str]) -> None:
    """Crops of every phase of one patient (`series[phase]["mask"]`: its tumour mask), 16^3 patches of
    `patch_phase` only. `masks` holds `cohort.mask_label` and `cohort.mask_components`."""
    from cmdnet.data.cohort import mask_label_for
    from cmdnet.data.roi import RoiParams, extract_roi as extract

    for phase, image, out in zip(phases, images, out_rois, strict=True):
        params = RoiParams.from_dict({**roi, "make_patches": phase == patch_phase, "seed": seed})
        info = extract(image, series[phase]["mask"], out, params, patient=patient, phase=phase,
                       mask_label=mask_label_for(masks, phase), mask_components=masks.get("mask_components"))
        print({k: v for k, v in info.items() if k != "path"})


def assemble_dataset(*, rois: Sequence[str], patients: Sequence[str], phases: Sequence[str],
                     patches_of: str | None, out_dataset: str, out_manifest: str) -> None:
    """Stack the ROI archives `rois`, given patient by patient and phase by phase within a patient."""
    from cmdnet.data.datasets import assemble_dataset as assemble

    keys = list(itertools.product(patients, phases))
    if len(keys) != len(rois):
        raise ValueError(f"{len(rois)} ROI archives for {len(patients)} patients x {len(phases)} phases")
    manifest = assemble(dict(zip(keys, rois)), list(phases), out_dataset, out_manifest, with_patches_of=patches_of)
    print(f"{manifest['patient_id'].nunique()} patients, phases {list(phases)} -> {out_dataset}")


# ---------------------------------------------------------------- MVI


def _torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _claim_gpu(device_policy: str) -> None:
    """Claim a GPU (before torch touches CUDA), then stop at once if the device policy cannot be met."""
    from cmdnet.device import claim_gpu, resolve_device

    print(claim_gpu().describe(), flush=True)
    resolve_device(device_policy)


def train_teacher(*, dataset: str, labels: str, folds: str, inner: str, clinical: str, dictionary: str, teacher: str,
                  repeat: int, fold: int, settings: Mapping, checkpoint: str | None, out_model: str,
                  out_history: str, threads: int = 1) -> None:
    _claim_gpu(settings["training"]["device"])
    _torch_threads(threads)
    from cmdnet.data.folds import Partitions
    from cmdnet.mvi.training.fold import load_mvi_data, train_teacher_fold

    data = load_mvi_data(dataset, labels, settings["phases"], clinical=clinical, dictionary=dictionary)
    summary = train_teacher_fold(data, Partitions.read(folds, inner), teacher, int(repeat), int(fold), dict(settings),
                                 out_model=out_model, out_history=out_history, checkpoint=checkpoint)
    print(summary)


def train_method(*, dataset: str, labels: str, folds: str, inner: str, method: str, repeat: int, fold: int, settings: Mapping,
                 checkpoint: str | None, out_model: str, out_history: str, teacher: str | None = None,
                 clinical: str | None = None, dictionary: str | None = None, threads: int = 1) -> None:
    _claim_gpu(settings["training"]["device"])
    _torch_threads(threads)
    from cmdnet.data.folds import Partitions
    from cmdnet.mvi.training.fold import load_mvi_data, train_method_fold

    data = load_mvi_data(dataset, labels, settings["phases"], clinical=clinical, dictionary=dictionary)
    summary = train_method_fold(data, Partitions.read(folds, inner), method, int(repeat), int(fold), dict(settings),
                                out_model=out_model, out_history=out_history, teacher=teacher or None,
                                checkpoint=checkpoint)
    print(summary)


def predict_mvi(*, dataset: str, labels: str, folds: str, inner: str, models: Sequence[str], phases: Sequence[str],
                device: str, out_predictions: str, out_validation: str, clinical: str | None = None,
                dictionary: str | None = None) -> None:
    """Out-of-fold predictions of one method's or teacher's fold models (every repeat), and the inner-validation
    predictions of their selected epochs."""
    import pandas as pd

    from cmdnet.data.folds import Partitions
    from cmdnet.data.sheets import write_parquet
    from cmdnet.mvi.training.fold import load_mvi_data, predict_fold

    data = load_mvi_data(dataset, labels, phases, clinical=clinical, dictionary=dictionary)
    partitions = Partitions.read(folds, inner)
    frames = [predict_fold(path, data, partitions, device=device) for path in models]
    write_parquet(pd.concat([f[0] for f in frames], ignore_index=True), out_predictions)
    write_parquet(pd.concat([f[1] for f in frames], ignore_index=True), out_validation)
    print(f"{sum(len(f[0]) for f in frames)} out-of-fold predictions -> {out_predictions}")


def clinical_reference(*, dataset: str, labels: str, folds: str, inner: str, clinical: str, dictionary: str,
                       phases: Sequence[str], c: float | str, seed: int, out_predictions: str,
                       out_validation: str) -> None:
    """The clinical-only logistic regression (`clinical_lr`) on every repeat's folds: out-of-fold and
    inner-validation predictions, in the files `predict_mvi` writes for a network."""
    from cmdnet.data.folds import Partitions
    from cmdnet.data.sheets import write_parquet
    from cmdnet.mvi.training.clinical_lr import clinical_lr_predictions
    from cmdnet.mvi.training.fold import load_mvi_data

    data = load_mvi_data(dataset, labels, phases, clinical=clinical, dictionary=dictionary)
    oof, validation = clinical_lr_predictions(data, Partitions.read(folds, inner), c=c, seed=int(seed))
    write_parquet(oof, out_predictions)
    write_parquet(validation, out_validation)
    print(f"clinical_lr (C = {c}): {len(oof)} out-of-fold predictions -> {out_predictions}")


def evaluate_mvi(*, methods: Sequence[str], teachers: Sequence[str], validation: Sequence[str],
                 histories: Sequence[str], method_names: Sequence[str], teacher_names: Sequence[str],
                 reference: str, seed: int, n_boot: int, out_summary: str, out_per_fold: str, out_delong: str,
                 out_figures: Sequence[str], out_table1: Sequence[str] = (), out_table2: Sequence[str] = (),
                 out_binary: Sequence[str] = ()) -> None:
    """The MVI tables, summary, tests and figures. `validation` lists the methods' then the teachers'
    inner-validation predictions, `histories` the repeat-0 fold-0 training histories of the same names in the
    same order, less the clinical-only references (nothing is trained by epochs there)."""
    from cmdnet.evaluation.mvi import mvi_evaluation, mvi_figures
    from cmdnet.mvi.methods import METHODS

    names = [*method_names, *teacher_names]
    method_files = dict(zip(method_names, methods, strict=True))
    mvi_evaluation(method_files, dict(zip(teacher_names, teachers, strict=True)),
                   validation_predictions=dict(zip(names, validation, strict=True)), reference=reference,
                   n_boot=n_boot, seed=seed, out_summary=out_summary, out_per_fold=out_per_fold,
                   out_delong=out_delong, out_table1=out_table1, out_table2=out_table2, out_binary=out_binary)
    trained = [n for n in names if n not in METHODS or not METHODS[n].clinical_only]
    mvi_figures(method_files, dict(zip(trained, histories, strict=True)), reference=reference, summary=out_summary,
                out_figures=out_figures)


def bundle_final(*, models: Sequence[str], labels: str, method: str, strategy: str, roi: Mapping,
                 settings: Mapping, synthetic: bool, out_bundle: str) -> None:
    """The model bundle of `method` for `cmdnet predict` (nothing is trained here); `synthetic` records whether
    its training cohort was cmdnet's synthetic one, which `cmdnet predict` says with every prediction."""
    from cmdnet.labels import outcome
    from cmdnet.product.bundle import write_bundle

    meta = write_bundle(out_bundle, list(models), method=method, roi_cfg=roi, labels=outcome(labels, "mvi"),
                        config_sections={"roi": dict(roi), "mvi": dict(settings)}, strategy=strategy,
                        synthetic=synthetic)
    print(f"bundle of {len(meta['members'])} {method} model(s) ({strategy}) -> {out_bundle}; training cohort "
          f"{meta['training_cohort']['n_patients']} patients {meta['training_cohort'].get('label_counts')}")


def tables_html(*, out_html: Sequence[str], csvs: Sequence[str], titles: Sequence[str]) -> None:
    """Results CSVs that a reader reads (the summary, the DeLong tests, the missingness report) as HTML pages."""
    from cmdnet.evaluation.tables import csv_to_html

    for csv, out, title in zip(csvs, out_html, titles, strict=True):
        print(csv_to_html(csv, out, title=title))


def describe_run(*, labels: str, config: Mapping, repo: str, out_description: str) -> None:
    """The report's "About this run" page: cohort kind and size, patients per class, scale against the papers'
    configuration, code commit and configuration digest."""
    from cmdnet.evaluation.run_description import describe_run as describe, git_commit, paper_settings
    from cmdnet.evaluation.run_description import write_run_description
    from cmdnet.labels import read_labels

    facts = describe(config, read_labels(labels).reset_index(), commit=git_commit(repo),
                     paper_config=paper_settings(repo))
    write_run_description(facts, out_description)
    print(f"{facts['cohort']} cohort, {facts['n_patients']} patients {facts['mvi_counts']}; commit {facts['commit']}; "
          f"config digest {facts['config_digest']}")


# ---------------------------------------------------------------- grading


def train_grade_fold(*, dataset: str, labels: str, folds: str, grade: Mapping, seed: int, repeat: int, fold: int,
                     checkpoint: str | None, out_predictions: str, out_diagnostics: str, threads: int = 1) -> None:
    """Train every configured patch model of one repeat and fold; write patient-level test predictions and the
    job's diagnostics (device, failures, patch counts, CIFA spectra, DCCA correlations)."""
    _claim_gpu(grade["training"]["device"])
    _torch_threads(threads)
    from cmdnet.grade.job import grade_fold_job

    grade_fold_job(dataset, labels, folds, dict(grade), seed, int(repeat), int(fold), out_predictions,
                   out_diagnostics, checkpoint_path=checkpoint)


def evaluate_grade(*, predictions: Sequence[str], diagnostics: Sequence[str], manifest: str, labels: str,
                   out_per_fold: str, out_pooled_auc: str, out_dcca: str, out_patches: str,
                   out_figures: Sequence[str], **out_tables: Sequence[str]) -> None:
    """The grading paper's tables (`out_<table key>`, from the registry), statistics and figures."""
    from cmdnet.grade.evaluate import grade_evaluation

    tables = {key.removeprefix("out_"): paths for key, paths in out_tables.items() if key.startswith("out_")}
    if len(tables) != len(out_tables):
        raise TypeError(f"evaluate_grade: unexpected arguments {sorted(set(out_tables) - {f'out_{k}' for k in tables})}")
    grade_evaluation(list(predictions), list(diagnostics), manifest=manifest, labels=labels, out_per_fold=out_per_fold,
                     out_pooled_auc=out_pooled_auc, out_dcca=out_dcca, out_patches=out_patches, out_tables=tables,
                     out_figures=out_figures)
