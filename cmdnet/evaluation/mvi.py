"""Evaluation of the MVI experiment: per-fold metrics, the tests, the CMD-Net paper's Tables 1 and 2, the binary
(any-MVI) table, the summary and the figures.

Inputs are each method's (and teacher's) out-of-fold predictions over R repeated K-fold partitions
(`patient_id, repeat, fold, label, prob_0..2`) and the inner-validation predictions of the same fold models.

Statistics, declared before any result is seen:
- Per test fold: macro F1, accuracy, macro one-vs-one AUC (Hand & Till 2001); tables show mean ± SD over all R x K
  test folds.
- Primary test (Table 1): each method against the reference on the per-fold AUC differences with the corrected
  resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for repeated CV), Holm-adjusted across the table's
  comparisons; raw and adjusted p-values and the CI of the mean difference in the CSV.
- Secondary: the paired stratified bootstrap of the pooled macro AUC (mean over repeats of each repeat's pooled AUC),
  conditional on the trained models (it resamples patients, not training sets). DeLong's test per class pair, in
  its own file.
- Binary endpoint (any MVI, M0 vs M1 + M2; p = P(M1) + P(M2)): AUC with DeLong CI, sensitivity and specificity at
  each fold's Youden threshold chosen on its inner validation split, Brier score, calibration intercept and slope
  (`cmdnet.evaluation.stats.binary`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cmdnet.data.sheets import write_csv
from cmdnet.evaluation import figures, tables
from cmdnet.evaluation.stats.binary import BINARY_ENDPOINT_COLUMNS, binary_endpoint_by_repeat, summarise_over_repeats
from cmdnet.evaluation.stats.bootstrap import paired_bootstrap_macro_auc, repeat_mean_auc, repeat_mean_auc_ci
from cmdnet.evaluation.stats.corrected_t import corrected_t_over_folds
from cmdnet.evaluation.stats.curves import decision_curves
from cmdnet.evaluation.stats.metrics import mvi_metrics, per_fold_metrics, prob_columns
from cmdnet.evaluation.stats.multiplicity import holm
from cmdnet.evaluation.stats.paired import pairwise_class_delong
from cmdnet.labels import MVI_CLASSES
from cmdnet.mvi.methods import METHODS, TEACHERS, display_name

FOLD_KEYS = ["repeat", "fold"]
P_PRIMARY = "p-value (corrected t)"
P_HOLM = "p-value (corrected t, Holm)"
P_BOOT = "p-value (bootstrap, conditional on the models)"


def read_predictions(files: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    out = {}
    for name, path in files.items():
        pred = pd.read_parquet(path)
        if "repeat" not in pred.columns:
            pred = pred.assign(repeat=0)
        out[name] = pred
    return out


def stacked_probs(pred: pd.DataFrame, reference: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels `(n,)` and probabilities `(R, n, C)`: each repeat's pooled out-of-fold predictions, patients in the
    same (sorted) order in every repeat; `reference` (another method's predictions) must cover the same patients
    with the same labels."""
    pcols = prob_columns(pred)
    blocks, labels = [], None
    for _, group in pred.sort_values(["repeat", "patient_id"]).groupby("repeat", sort=True):
        if labels is None:
            labels, ids = group["label"].to_numpy(), group["patient_id"].tolist()
        elif group["patient_id"].tolist() != ids:
            raise ValueError("the repeats of one method's predictions hold different patients")
        blocks.append(group[pcols].to_numpy())
    if reference is not None:
        ref_labels, _ = stacked_probs(reference)
        if sorted(reference["patient_id"].unique()) != ids or not np.array_equal(ref_labels, labels):
            raise ValueError("two methods' predictions cover different patients or disagree on their labels")
    return labels, np.stack(blocks)


def _summary_row(name: str, role: str, pred: pd.DataFrame, per_fold: pd.DataFrame, n_boot: int, seed: int) -> dict:
    labels, probs = stacked_probs(pred)
    lo, hi = repeat_mean_auc_ci(labels, probs, n_boot=n_boot, seed=seed)
    row = {"name": name, "display": display_name(name), "role": role, "n_patients": len(labels),
           "n_repeats": probs.shape[0], "n_test_folds": len(per_fold),
           "pooled_auc_macro_ovo": repeat_mean_auc(labels, probs), "pooled_auc_ci_low": lo, "pooled_auc_ci_high": hi}
    for metric in [c for c in per_fold.columns if c not in (*FOLD_KEYS, "n")]:
        row[f"{metric}_mean"] = per_fold[metric].mean()
        row[f"{metric}_sd"] = per_fold[metric].std(ddof=1)
    return row


def _delong_rows(preds: Mapping[str, pd.DataFrame], reference: str) -> list[dict]:
    rows = []
    ref = preds[reference]
    for name, pred in preds.items():
        if name == reference:
            continue
        for repeat in sorted(ref["repeat"].unique()):
            a = ref[ref["repeat"] == repeat].sort_values("patient_id")
            b = pred[pred["repeat"] == repeat].sort_values("patient_id")
            if a["patient_id"].tolist() != b["patient_id"].tolist() or not np.array_equal(a["label"], b["label"]):
                raise ValueError(f"{name} and {reference} were predicted for different patients in repeat {repeat}")
            for r in pairwise_class_delong(a["label"].to_numpy(), a[prob_columns(a)].to_numpy(),
                                           b[prob_columns(b)].to_numpy()):
                rows.append({"reference": reference, "method": name, "repeat": int(repeat),
                             "pair": f"{MVI_CLASSES[r['class_j']]} vs {MVI_CLASSES[r['class_i']]}",
                             **{k: v for k, v in r.items() if not isinstance(v, (tuple, list))},
                             "ci_reference": tuple(r["ci_a"]), "ci_method": tuple(r["ci_b"])})
    return rows


def table1_statistics(per_fold: Mapping[str, pd.DataFrame], preds: Mapping[str, pd.DataFrame], *, reference: str,
                      n_boot: int, seed: int) -> pd.DataFrame:
    """One row per compared method: the primary test (corrected t, raw and Holm-adjusted p, CI of the mean AUC
    difference method - reference) and the secondary bootstrap p-value."""
    rows = []
    for name in per_fold:
        if name == reference:
            continue
        t = corrected_t_over_folds(per_fold[name], per_fold[reference], "auc_macro_ovo")
        labels, pa = stacked_probs(preds[name], preds[reference])
        _, pb = stacked_probs(preds[reference])
        boot = paired_bootstrap_macro_auc(labels, pa, pb, n_boot=n_boot, seed=seed)
        rows.append({"method": name, "auc_diff_mean": t["mean_diff"], "auc_diff_ci_low": t["ci_low"],
                     "auc_diff_ci_high": t["ci_high"], "t": t["t"], "df": t["df"], P_PRIMARY: t["p"],
                     "pooled_auc_diff": boot["diff"], P_BOOT: boot["p"]})
    stats = pd.DataFrame(rows, columns=["method", "auc_diff_mean", "auc_diff_ci_low", "auc_diff_ci_high", "t",
                                        "df", P_PRIMARY, "pooled_auc_diff", P_BOOT])
    stats.insert(stats.columns.get_loc(P_PRIMARY) + 1, P_HOLM, holm(stats[P_PRIMARY].to_numpy(dtype=float)))
    return stats


def mvi_evaluation(method_predictions: Mapping[str, str | Path], teacher_predictions: Mapping[str, str | Path], *,
                   validation_predictions: Mapping[str, str | Path], reference: str, n_boot: int, seed: int,
                   out_summary: str | Path, out_per_fold: str | Path, out_delong: str | Path,
                   out_table1: Sequence[str | Path] = (), out_table2: Sequence[str | Path] = (),
                   out_binary: Sequence[str | Path] = (), progress=print) -> None:
    """Write the summary, per-fold metrics, DeLong tests and the tables whose output paths are given."""
    preds = read_predictions(method_predictions)
    if reference not in preds:
        raise ValueError(f"the reference method {reference!r} was not trained; methods: {list(preds)}")
    teacher_preds = read_predictions(teacher_predictions)
    validation = read_predictions(validation_predictions)
    every = {**preds, **teacher_preds}
    per_fold = {name: per_fold_metrics(pred, mvi_metrics, FOLD_KEYS) for name, pred in every.items()}
    first = preds[reference]
    counts = tables.class_counts_of(first[first["repeat"] == first["repeat"].min()], MVI_CLASSES)
    n_repeats, n_folds = first["repeat"].nunique(), len(per_fold[reference])
    design = f"{n_repeats} x {n_folds // max(n_repeats, 1)}-fold cross-validation ({n_folds} test folds)"

    rows = [_summary_row(n, _role(n, teacher_preds), p, per_fold[n], n_boot, seed) for n, p in every.items()]
    write_csv(pd.DataFrame(rows), out_summary)
    write_csv(pd.concat([f.assign(name=n) for n, f in per_fold.items()], ignore_index=True), out_per_fold)
    write_csv(pd.DataFrame(_delong_rows(preds, reference)), out_delong)

    if out_table1:
        names = [m for m in METHODS if m in preds and "table1" in METHODS[m].tables and not METHODS[m].clinical_only]
        clinical_refs = [m for m in METHODS if m in preds and METHODS[m].clinical_only]
        progress(f"Table 1: {len(names)} methods, bootstrap n={n_boot}")
        stats = table1_statistics({m: per_fold[m] for m in names}, preds, reference=reference, n_boot=n_boot,
                                  seed=seed).set_index("method")
        spec = tables.mvi_table1(
            {m: per_fold[m] for m in names}, reference=reference,
            p_values={col: stats[col].to_dict() for col in (P_PRIMARY, P_HOLM, P_BOOT)},
            display_names={m: display_name(m, with_citation=True) for m in names + clinical_refs},
            title=f"Quantitative results of our network and state-of-the-art methods (3-class MVI, {design}).",
            class_counts=counts, reference_rows={m: per_fold[m] for m in clinical_refs},
            footnote=(f"Primary test: corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank "
                      f"2004) of each method's per-fold AUC against {display_name(reference)} over the {n_folds} "
                      f"test folds (df = {n_folds - 1}), Holm-adjusted across the table's {len(stats)} comparisons. "
                      f"Secondary: paired stratified bootstrap (n = {n_boot}) of the pooled macro AUC, conditional "
                      "on the trained models. The CSV holds the CI of each mean AUC difference."))
        spec.rows = spec.rows.merge(stats.drop(columns=[P_PRIMARY, P_HOLM, P_BOOT]).reset_index(), on="method",
                                    how="left")
        spec.write(out_table1)
    if out_table2:
        names = [m for m in METHODS if m in preds and "table2" in METHODS[m].tables and m != reference]
        names += [reference] if "table2" in METHODS[reference].tables else []  # the paper puts ours last
        tables.mvi_table2({m: per_fold[m] for m in names},
                          teacher_student={m: METHODS[m].table2_role for m in names},
                          display_names={m: display_name(m) for m in names},
                          footnote=f"{design}.", class_counts=counts).write(out_table2)
    if out_binary:
        binary_table(preds, teacher_preds, validation, class_counts=counts).write(out_binary)


def _role(name: str, teacher_preds: Mapping) -> str:
    if name in teacher_preds:
        return "teacher (images + clinical)"
    return "clinical data only (reference)" if METHODS[name].clinical_only else "image-only"


def binary_table(preds: Mapping[str, pd.DataFrame], teacher_preds: Mapping[str, pd.DataFrame],
                 validation: Mapping[str, pd.DataFrame], *, class_counts: Mapping[str, int]) -> tables.TableSpec:
    """Any MVI (M0 vs M1 + M2) for every method and teacher: mean over repeats of each repeat's pooled metrics."""
    rows = []
    for name, pred in {**preds, **teacher_preds}.items():
        per_repeat = binary_endpoint_by_repeat(pred, validation[name])
        summary = summarise_over_repeats(per_repeat, BINARY_ENDPOINT_COLUMNS)
        marks = {"teacher (images + clinical)": " (teacher: uses clinical data)",
                 "clinical data only (reference)": " (clinical data only)"}
        row = {"method": name, "Method": display_name(name) + marks.get(_role(name, teacher_preds), "")}
        for column in BINARY_ENDPOINT_COLUMNS:
            row[f"{column} mean"], row[f"{column} sd"] = summary[column]["mean"], summary[column]["sd"]
        rows.append(row)
    return tables.binary_table(pd.DataFrame(rows), class_counts=class_counts, footnote=(
        "Event: any MVI (M1 or M2), probability P(M1) + P(M2). Each patient is classified at its test "
        "fold's threshold, the Youden-optimal threshold on that fold's inner validation split (ties: the lower, "
        "more sensitive one); the test folds never choose a threshold. Metrics of each repeat's pooled out-of-fold "
        "predictions, mean (± SD over repeats when there are several); AUC CI: DeLong 95% interval of a repeat, "
        "averaged. Calibration intercept and slope: logistic recalibration on logit(p) (ideal 0 and 1)."))


def auc_interval_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's pooled macro AUCs with CIs as `figures.auc_interval_figure` rows, grouped as in the tables:
    Table 1 methods, Table 2 ablations, other methods, then the teachers (they use clinical data)."""
    by_name = summary.set_index("name")
    groups = [("Table 1", [m for m in METHODS if "table1" in METHODS[m].tables and not METHODS[m].clinical_only]),
              ("Table 2 (ablations)", [m for m in METHODS if METHODS[m].tables == ("table2",)]),
              ("Other methods", [m for m in METHODS if not METHODS[m].tables]),
              ("Clinical data only (reference)", [m for m in METHODS if METHODS[m].clinical_only]),
              ("Teachers (use clinical data)", list(TEACHERS))]
    rows = [{"name": display_name(n), "auc": by_name.loc[n, "pooled_auc_macro_ovo"],
             "ci_low": by_name.loc[n, "pooled_auc_ci_low"], "ci_high": by_name.loc[n, "pooled_auc_ci_high"],
             "group": group} for group, names in groups for n in names if n in by_name.index]
    return pd.DataFrame(rows)


def mvi_figures(method_predictions: Mapping[str, str | Path], histories: Mapping[str, str | Path], *,
                reference: str, summary: str | Path, out_figures: Sequence[str | Path]) -> None:
    """The figures named by `out_figures` (file stem = figure), methods named as in the tables, the reference black:
    ROC curves per class pair and of any MVI (M0 vs M1 + M2), calibration of P(MVI) and decision curves of the
    Table-1 methods (first repeat's pooled out-of-fold predictions), the confusion matrix of the reference, every
    method's and teacher's pooled AUC with its CI (`summary`), and `training_curves_<name>` per method or teacher
    (repeat 0, fold 0)."""
    preds = read_predictions(method_predictions)
    first = {name: pred[pred["repeat"] == pred["repeat"].min()] for name, pred in preds.items()}
    table1 = {display_name(m): first[m] for m in METHODS if m in first and "table1" in METHODS[m].tables}
    ref_name = display_name(reference)

    def decision_curves_figure(out: Path) -> Path:
        curves = decision_curves(table1)
        by_method = {name: frame for name, frame in curves.groupby("method", sort=False)}
        treat_all = by_method.pop("Treat all")
        by_method.pop("Treat none", None)
        return figures.decision_curve_figure(by_method, out, treat_all=treat_all, reference=ref_name)

    makers = {
        "roc_pairwise": lambda out: figures.roc_pairwise_figure(table1, out, class_names=MVI_CLASSES,
                                                                reference=ref_name),
        "roc_any_mvi": lambda out: figures.roc_any_mvi_figure(table1, out, reference=ref_name),
        "confusion_matrix": lambda out: figures.confusion_matrix_figure(
            first[reference], out, class_names=MVI_CLASSES,
            title=f"{ref_name}: confusion matrix (out-of-fold, row-normalised)"),
        "calibration": lambda out: figures.calibration_figure(table1, out, reference=ref_name),
        "decision_curves": decision_curves_figure,
        "auc_intervals": lambda out: figures.auc_interval_figure(auc_interval_rows(pd.read_csv(summary)), out,
                                                                 reference=ref_name),
    }
    for name, path in histories.items():
        makers[f"training_curves_{name}"] = (lambda out, path=path, name=name: figures.training_curves_figure(
            path, out, title=f"{display_name(name)}, repeat 0, fold 0"))
    for out in map(Path, out_figures):
        if out.stem not in makers:
            raise ValueError(f"no MVI figure is called {out.stem!r}; known: {', '.join(makers)}")
        makers[out.stem](out)
