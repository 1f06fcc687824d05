"""Evaluation of the grading experiment: the paper's Tables 1 and 2, cmdnet's controls table, statistics,
patch statistics, DCCA correlations and figures.

Which (method, dim) gives which row of which table comes from the registry (`cmdnet.grade.methods`).
Every table has the paper's columns (accuracy, sensitivity, specificity at threshold 0.5 on P(high), mean ±
SD over the R x K test folds) and, as additions labelled as such, the per-fold AUC, the pooled out-of-fold AUC
per repeat with its DeLong 95% CI (averaged over repeats), and the corrected resampled t-test (Nadeau &
Bengio 2003) of the per-fold AUC against the row's comparison (the proposed model of the same dim in Tables
1-2, the row's counterpart in the controls table), with Holm's correction across the table's comparisons.
The table CSVs hold the raw numbers: t, df, AUC difference and its CI, raw and Holm-adjusted p-values.

A model that failed on a fold (non-finite loss: its prediction rows carry the message in `error`) is
evaluated on its other folds; its row says so in a "Folds" column and the footnote names the failure; the
paired test then uses the folds both models completed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cmdnet.atomic import atomic_path
from cmdnet.grade.methods import (
    DIM_NAMES,
    GRADE_METHODS,
    REFERENCE,
    GradeTable,
    comparison_of,
    grade_method,
    table_rows,
    tables_given,
)
from cmdnet.evaluation.stats.corrected_t import corrected_resampled_t
from cmdnet.evaluation.stats.delong import delong_ci
from cmdnet.evaluation.stats.multiplicity import holm
from cmdnet.evaluation.stats.metrics import binary_metrics, per_fold_metrics, summarise
from cmdnet.evaluation.tables import SD_NOTE, TableSpec


GRADE_METRICS = {"Accuracy": "accuracy", "Sensitivity": "sensitivity", "Specificity": "specificity",
                 "AUC (added)": "auc"}
POOLED = "Pooled AUC [95% CI] (added)"
P_RAW, P_HOLM = "p-value (corrected t, AUC)", "p-value (Holm)"
FOLD_KEYS = ["repeat", "fold"]


def _write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def load_predictions(paths: list[str | Path]) -> pd.DataFrame:
    """All (repeat, fold) prediction files in one frame, with `prob_0`, `prob_1` for the metric helpers."""
    pred = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    missing = {"repeat", "fold", "method", "dim", "patient_id", "label", "prob_high"} - set(pred.columns)
    if missing:
        raise ValueError(f"grading predictions lack columns {sorted(missing)}")
    if "error" not in pred.columns:
        pred["error"] = ""
    pred["error"] = pred["error"].fillna("")
    return pred.assign(prob_0=1.0 - pred["prob_high"], prob_1=pred["prob_high"])


def fold_status(pred: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, dim, repeat, fold): `n` test patients and `error` ("" when the model trained)."""
    return (pred.groupby(["method", "dim", *FOLD_KEYS], sort=True)
            .agg(n=("patient_id", "nunique"), error=("error", "max")).reset_index())


def per_fold_by_model(pred: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Binary metrics per completed test fold, for every (method, dim) with at least one completed fold."""
    ok = pred[pred["error"] == ""]
    return {(m, d): per_fold_metrics(rows, binary_metrics, FOLD_KEYS) for (m, d), rows in
            ok.groupby(["method", "dim"], sort=False)}


def pooled_auc_per_repeat(pred: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per (method, dim, repeat) whose folds all completed: the AUC of the repeat's pooled out-of-fold
    predictions (every patient once) with its DeLong (1 - alpha) CI."""
    rows = []
    for (m, d, r), group in pred.groupby(["method", "dim", "repeat"], sort=True):
        if (group["error"] != "").any():
            continue
        auc, lo, hi = delong_ci(group["label"].to_numpy(), group["prob_high"].to_numpy(), alpha)
        rows.append({"method": m, "dim": d, "repeat": r, "n": len(group), "auc": auc, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["method", "dim", "repeat", "n", "auc", "ci_low", "ci_high"])


def _training_sizes(status: pd.DataFrame) -> pd.DataFrame:
    """n_test and n_train of every (repeat, fold): a repeat's patients minus its test fold."""
    folds = status.groupby(FOLD_KEYS)["n"].max().reset_index(name="n_test")
    folds["n_train"] = folds.groupby("repeat")["n_test"].transform("sum") - folds["n_test"]
    return folds


def paired_auc_test(per_fold_a: pd.DataFrame, per_fold_b: pd.DataFrame, sizes: pd.DataFrame,
                    alpha: float = 0.05) -> dict:
    """Corrected resampled t-test of the per-fold AUC difference A - B on the folds both completed."""
    both = per_fold_a[[*FOLD_KEYS, "auc"]].merge(per_fold_b[[*FOLD_KEYS, "auc"]], on=FOLD_KEYS,
                                                 suffixes=("_a", "_b")).merge(sizes, on=FOLD_KEYS)
    if len(both) < 2:
        return {"p": np.nan, "n_folds": len(both)}
    return corrected_resampled_t((both["auc_a"] - both["auc_b"]).to_numpy(), both["n_train"].to_numpy(),
                                 both["n_test"].to_numpy(), alpha=alpha)


def _pooled_cell(pooled: pd.DataFrame) -> str:
    if pooled.empty:
        return ""
    auc, lo, hi = (pooled[c].mean() * 100 for c in ("auc", "ci_low", "ci_high"))
    return f"{auc:.2f} [{lo:.2f}, {hi:.2f}]"


def grade_table(table: GradeTable, rows: list[tuple[str, str]], per_fold: dict, status: pd.DataFrame,
                pooled: pd.DataFrame, *, notes: list[str] = (), alpha: float = 0.05) -> TableSpec:
    """One grading table (see the module docstring); `rows` are (method, dim) in table order."""
    sizes = _training_sizes(status)
    records = []
    for method, dim in rows:
        spec = GRADE_METHODS[method]
        mine = status[(status["method"] == method) & (status["dim"] == dim)]
        failed = mine[mine["error"] != ""]
        folds = per_fold.get((method, dim))
        other = comparison_of(table.key, method)
        rec: dict = {"method": method, "dim": dim, "Method": spec.display(table.key, dim),
                     "n_folds": len(mine), "n_failed": len(failed),
                     "Folds": f"{len(mine) - len(failed)} of {len(mine)}", "compared_with": other or ""}
        if folds is not None and len(folds) >= 2:
            for display, (mean, sd) in zip(GRADE_METRICS, summarise(folds, GRADE_METRICS.values()).values()):
                rec[f"{display} mean"], rec[f"{display} sd"] = mean, sd
        repeat_auc = pooled[(pooled["method"] == method) & (pooled["dim"] == dim)]
        rec[POOLED] = _pooled_cell(repeat_auc)
        rec["pooled_auc_mean"] = repeat_auc["auc"].mean() if len(repeat_auc) else np.nan
        test = {"p": np.nan}
        if other is not None and folds is not None and (other, dim) in per_fold:
            test = paired_auc_test(folds, per_fold[(other, dim)], sizes, alpha)
        rec.update({f"test_{k}": v for k, v in test.items() if k != "p"})
        rec[P_RAW] = test["p"]
        records.append(rec)
    frame = pd.DataFrame(records)
    frame[P_HOLM] = holm(frame[P_RAW].to_numpy(dtype=float)) if len(frame) else []
    for display in GRADE_METRICS:   # a model that never completed a fold still gets its (empty) row
        for part in ("mean", "sd"):
            frame[f"{display} {part}"] = frame.get(f"{display} {part}", np.nan)
    columns = ["Method", *GRADE_METRICS, POOLED, P_RAW, P_HOLM]
    if frame["n_failed"].sum():
        columns.insert(1, "Folds")
    n_tests = int(frame[P_RAW].notna().sum())
    against = ("the proposed model (local and non-local fusion by CIFA) of the same dimension"
               if table.compare == "reference" else "the method whose ingredient the row isolates")
    footnote = " ".join([
        f"{SD_NOTE}; per completed test fold (repeats x folds).",
        "Positive class: high grade; prediction threshold 0.5 on P(high), fixed (not tuned).",
        "Added by cmdnet, not in the paper: the AUC column, the pooled AUC (per repeat, every patient's",
        f"out-of-fold prediction pooled, DeLong {100 * (1 - alpha):.0f}% CI; AUC and bounds averaged over repeats)",
        (f"and the p-values: corrected resampled t-test (Nadeau & Bengio 2003) of the per-fold AUC against {against},"
         f" two-sided, over the shared test folds; Holm's correction across this table's {n_tests} comparisons."
         if n_tests else f"and the p-value columns, empty here: {against} is not among the configured methods."),
        *notes])
    return TableSpec(frame, table.title, columns, {k: "max" for k in GRADE_METRICS}, footnote)


# ------------------------------------------------------------------------------- other outputs


def patch_statistics(manifest: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per grade (and all): patients, patches per patient (mean, median, min, max), centroid-fallback
    patients (a single patch centred on a tumour with no qualifying patch, mostly non-tumour when small)
    and the median tumour volume; the last row tests fallback vs grade (Fisher's exact test)."""
    from scipy.stats import fisher_exact

    table = manifest.merge(labels[["patient_id", "grade"]], on="patient_id", validate="one_to_one")
    table = table.dropna(subset=["grade"]).astype({"grade": int})
    rows = []
    for name, group in [("low (0)", table[table["grade"] == 0]), ("high (1)", table[table["grade"] == 1]),
                        ("all", table)]:
        rows.append({"grade": name, "patients": len(group), "patches": int(group["n_patches"].sum()),
                     "patches_per_patient_mean": group["n_patches"].mean(),
                     "patches_per_patient_median": group["n_patches"].median(),
                     "patches_per_patient_min": group["n_patches"].min(),
                     "patches_per_patient_max": group["n_patches"].max(),
                     "fallback_patients": int(group["patch_fallback"].sum()),
                     "fallback_fraction": group["patch_fallback"].mean(),
                     "tumour_volume_mm3_median": group["tumour_volume_mm3"].median()})
    counts = pd.crosstab(table["grade"], table["patch_fallback"]).reindex(index=[0, 1], columns=[False, True],
                                                                          fill_value=0)
    out = pd.DataFrame(rows)
    out["fallback_vs_grade_fisher_p"] = [np.nan, np.nan, float(fisher_exact(counts.to_numpy())[1])]
    return out


def dcca_correlations(diagnostics: list[dict]) -> pd.DataFrame:
    """Long table of the DCCA models' canonical correlations: per (repeat, fold, dim, stage, component),
    `train` (in-sample, fitted on the training samples) and `heldout` (the test samples)."""
    rows = []
    for diag in diagnostics:
        for name, info in diag["models"].items():
            method, dim = name.split("/")
            for stage in ("after_pretraining", "final"):
                values = info.get("dcca", {}).get(stage)
                if values is None:
                    continue
                for c, (train, held) in enumerate(zip(values["train"], values["heldout"])):
                    rows.append({"repeat": diag["repeat"], "fold": diag["fold"], "method": method, "dim": dim,
                                 "stage": stage, "component": c, "train": train, "heldout": held,
                                 "batch_patients": info["dcca"]["batch_patients"]})
    return pd.DataFrame(rows, columns=["repeat", "fold", "method", "dim", "stage", "component", "train", "heldout",
                                       "batch_patients"])


def _dcca_note(corr: pd.DataFrame) -> str:
    if corr.empty:
        return ""
    final = corr[corr["stage"] == "final"]
    parts = []
    for dim, group in final.groupby("dim"):
        totals = group.groupby(["repeat", "fold"])[["train", "heldout"]].sum()
        k = group["component"].nunique()
        parts.append(f"{DIM_NAMES[dim]} {totals['heldout'].mean():.2f} held out vs {totals['train'].mean():.2f} "
                     f"in sample (of at most {k})")
    return "DCCA total canonical correlation after fine-tuning, mean over folds: " + "; ".join(parts) + "."


def _failure_note(status: pd.DataFrame, rows: list[tuple[str, str]]) -> str:
    failed = status[(status["error"] != "") & status.set_index(["method", "dim"]).index.isin(rows)]
    if failed.empty:
        return ""
    items = [f"{r.error} (repeat {r.repeat}, fold {r.fold})" for r in failed.itertuples()]
    return "Failed models, evaluated on their other folds: " + "; ".join(items) + "."


def _settings_note(table: GradeTable, config: dict) -> str:
    if table.key == "controls" or not config:
        return ""
    note = (f"CIFA common dimension k = {config['common_dim']} and auxiliary weight {config['aux_weight']}: "
            "fixed choices, not tuned (the paper gives neither).")
    if table.key == "table1":
        note += (" The fusion rows are the same models as Table 2's last rows (the paper's Tables 1 and 2 report "
                 "different 2D numbers for that one model; cmdnet trains it once).")
    return note


def grade_evaluation(prediction_paths: list[str | Path], diagnostics_paths: list[str | Path], *,
                     manifest: str | Path, labels: str | Path, out_per_fold: str | Path, out_pooled_auc: str | Path,
                     out_dcca: str | Path, out_patches: str | Path, out_tables: Mapping[str, Sequence[str | Path]],
                     out_figures: Sequence[str | Path], alpha: float = 0.05, progress=print) -> None:
    """Tables (`out_tables[key]`, every format of the registry's table `key`), per-fold metrics, pooled AUC per
    repeat, patch statistics, DCCA correlations, and the figures `out_figures` names (ROC, CIFA spectra)."""
    from cmdnet.evaluation import figures

    pred = load_predictions(prediction_paths)
    diagnostics = [json.loads(Path(p).read_text()) for p in diagnostics_paths]
    config = diagnostics[0].get("config", {}) if diagnostics else {}
    status = fold_status(pred)
    per_fold = per_fold_by_model(pred)
    pooled = pooled_auc_per_repeat(pred, alpha)
    corr = dcca_correlations(diagnostics)
    per_fold_rows = [f.assign(method=m, dim=d) for (m, d), f in per_fold.items()]
    per_fold_all = status.merge(pd.concat(per_fold_rows, ignore_index=True) if per_fold_rows else
                                pd.DataFrame(columns=["method", "dim", *FOLD_KEYS]),
                                on=["method", "dim", *FOLD_KEYS], how="left", suffixes=("", "_metrics"))
    _write_csv(per_fold_all, out_per_fold)
    _write_csv(pooled, out_pooled_auc)
    _write_csv(corr, out_dcca)
    _write_csv(patch_statistics(pd.read_parquet(manifest), pd.read_parquet(labels)), out_patches)
    figure_paths = {Path(p).stem: Path(p) for p in out_figures}

    methods = list(dict.fromkeys(pred["method"]))
    dims = list(dict.fromkeys(pred["dim"]))
    for table in tables_given(methods):
        rows = table_rows(table.key, methods, dims)
        notes = [n for n in (_settings_note(table, config), _dcca_note(corr) if table.key == "table2" else "",
                             _failure_note(status, rows)) if n]
        spec = grade_table(table, rows, per_fold, status, pooled, notes=notes, alpha=alpha)
        if table.key in out_tables:
            spec.write(out_tables[table.key])
        progress(f"{table.stem}: {len(rows)} rows")

    first = pred[(pred["repeat"] == pred["repeat"].min())]
    ok_first = first.groupby(["method", "dim"]).filter(lambda g: (g["error"] == "").all())
    if "roc_grade" in figure_paths:
        panels: dict[str, dict[str, pd.DataFrame]] = {}
        for (m, d), g in ok_first.groupby(["method", "dim"], sort=False):
            panels.setdefault(DIM_NAMES[d], {})[grade_method(m).rows[0][1]] = g
        reference = grade_method(REFERENCE).rows[0][1]
        figures.roc_binary_figure(panels, figure_paths["roc_grade"], reference=reference,
                                  note="Curves pool the first repeat's out-of-fold predictions; the tables average "
                                       "per-fold metrics over every repeat and fold.")
    if "cifa_spectra" in figure_paths:
        first_job = min(diagnostics, key=lambda d: (d["repeat"], d["fold"]))
        bars = {f"{DIM_NAMES[name.split('/')[1]]} {part} ({branch})": np.asarray(s[f"sv_{part}_{i}"], dtype=float)
                for name, info in first_job["models"].items() if name.startswith("cifa/") and "spectra" in info
                for s in [info["spectra"]] for part in ("common", "individual")
                for i, branch in ((1, "local"), (2, "non-local"))}
        figures.cifa_spectra_figure(
            bars or {"no spectra (CIFA failed on this fold)": [0.0]}, figure_paths["cifa_spectra"],
            title="Common vs individual components (repeat 0, fold 0, test patches)")
