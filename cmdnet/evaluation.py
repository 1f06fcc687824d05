"""Evaluation of both experiments: per-fold metrics, statistical tests, the four tables and the figures."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from . import figures, tables
from .atomic import atomic_path
from .methods import METHODS, TEACHERS, method as method_spec
from .stats.bootstrap import bootstrap_ci
from .stats.metrics import binary_metrics, macro_ovo_auc, mvi_metrics, per_fold_metrics, prob_columns
from .stats.tests import pairwise_class_delong

MVI_CLASSES = ("M0", "M1", "M2")


def _write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def display_name(name: str) -> str:
    spec = method_spec(name)
    return f"{spec.display} ({spec.citation})" if spec.citation else spec.display


def mvi_evaluation(method_predictions: Mapping[str, str | Path], teacher_predictions: Mapping[str, str | Path],
                   *, reference: str, out_tables: Path, out_dir: Path, n_boot: int = 2000, seed: int = 0,
                   progress=print) -> dict[str, Path]:
    """Tables 1 and 2 of the CMD-Net paper plus per-fold metrics, a summary and the pairwise DeLong tests."""
    preds = {m: pd.read_parquet(p) for m, p in method_predictions.items()}
    if reference not in preds:
        raise ValueError(f"the reference method {reference!r} was not trained; methods: {list(preds)}")
    teacher_preds = {t: pd.read_parquet(p) for t, p in teacher_predictions.items()}
    per_fold = {name: per_fold_metrics(pred, mvi_metrics) for name, pred in {**preds, **teacher_preds}.items()}

    rows = []
    for name, folds in per_fold.items():
        pred = preds.get(name, teacher_preds.get(name))
        labels, probs = pred["label"].to_numpy(), pred[prob_columns(pred)].to_numpy()
        lo, hi = bootstrap_ci(labels, probs, macro_ovo_auc, n_boot=n_boot, seed=seed)
        role = "teacher (images + clinical)" if name in teacher_preds else "image-only"
        row = {"name": name, "role": role, "pooled_auc_macro_ovo": macro_ovo_auc(labels, probs),
               "pooled_auc_ci_low": lo, "pooled_auc_ci_high": hi}
        for metric in [c for c in folds.columns if c not in ("fold", "n")]:
            row[f"{metric}_mean"] = folds[metric].mean()
            row[f"{metric}_sd"] = folds[metric].std(ddof=1)
        rows.append(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"summary": out_dir / "summary.csv", "per_fold": out_dir / "metrics_per_fold.csv",
               "delong": out_dir / "delong_pairwise.csv"}
    _write_csv(pd.DataFrame(rows), written["summary"])
    _write_csv(pd.concat([f.assign(name=n) for n, f in per_fold.items()], ignore_index=True), written["per_fold"])

    delong_rows = []
    ref = preds[reference].sort_values("patient_id")
    for name, pred in preds.items():
        if name == reference:
            continue
        other = pred.sort_values("patient_id")
        if list(other["patient_id"]) != list(ref["patient_id"]):
            raise ValueError(f"{name} and {reference} were predicted for different patients")
        if not np.array_equal(other["label"].to_numpy(), ref["label"].to_numpy()):
            raise ValueError(f"{name} and {reference} disagree on the true labels of the same patients")
        for r in pairwise_class_delong(ref["label"].to_numpy(), ref[prob_columns(ref)].to_numpy(),
                                       other[prob_columns(other)].to_numpy()):
            delong_rows.append({"reference": reference, "method": name,
                                "pair": f"{MVI_CLASSES[r['class_j']]} vs {MVI_CLASSES[r['class_i']]}",
                                **{k: v for k, v in r.items() if not isinstance(v, (tuple, list))},
                                "ci_reference": tuple(r["ci_a"]), "ci_method": tuple(r["ci_b"])})
    _write_csv(pd.DataFrame(delong_rows), written["delong"])

    table1 = [m for m in METHODS if m in preds and "table1" in METHODS[m].tables]
    if reference in table1:
        progress(f"Table 1: {len(table1)} methods, bootstrap n={n_boot}")
        k = per_fold[reference]["fold"].nunique()
        spec = tables.mvi_table1({m: per_fold[m] for m in table1}, reference=reference,
                                 pooled_predictions={m: preds[m] for m in table1},
                                 display_names={m: display_name(m) for m in table1}, n_boot=n_boot, seed=seed,
                                 title="Quantitative results of our network and state-of-the-art methods "
                                       f"(3-class MVI, {k}-fold cross-validation).")
        written.update({f"table1_{k}": v for k, v in spec.write(out_tables / "table1_mvi").items()})
    table2 = [m for m in METHODS if m in preds and "table2" in METHODS[m].tables and m != reference]
    table2 += [reference] if "table2" in METHODS[reference].tables else []  # the paper puts ours last
    if table2:
        spec = tables.mvi_table2({m: per_fold[m] for m in table2},
                                 teacher_student={m: METHODS[m].table2_role for m in table2},
                                 display_names={m: METHODS[m].display for m in table2},
                                 class_counts=tables.class_counts_of(preds[reference], MVI_CLASSES))
        written.update({f"table2_{k}": v for k, v in spec.write(out_tables / "table2_mvi_ablation").items()})
    return written


def teacher_display_name(name: str) -> str:
    """"Teacher (PRE + HBP + clinical)", "Teacher (PRE + HBP + clinical, no CA)", ... for a TeacherSpec name."""
    spec = TEACHERS[name]
    return f"Teacher ({' + '.join(spec.phases)} + clinical{'' if spec.use_ca else ', no CA'})"


def _figure_name(name: str) -> str:
    return METHODS[name].display if name in METHODS else teacher_display_name(name)


def auc_interval_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's pooled macro AUCs with CIs as `auc_interval_figure` rows, grouped as in the tables.

    Order: Table 1 methods, Table 2 ablations, other methods, then teachers (they use clinical data), each
    group in registry order.
    """
    by_name = summary.set_index("name")
    groups = [("Table 1", [m for m in METHODS if "table1" in METHODS[m].tables]),
              ("Table 2 (ablations)", [m for m in METHODS if METHODS[m].tables == ("table2",)]),
              ("Other methods", [m for m in METHODS if not METHODS[m].tables]),
              ("Teachers (use clinical data)", list(TEACHERS))]
    rows = [{"name": _figure_name(n), "auc": by_name.loc[n, "pooled_auc_macro_ovo"],
             "ci_low": by_name.loc[n, "pooled_auc_ci_low"], "ci_high": by_name.loc[n, "pooled_auc_ci_high"],
             "group": group} for group, names in groups for n in names if n in by_name.index]
    return pd.DataFrame(rows)


def mvi_figures(method_predictions: Mapping[str, str | Path], histories: Mapping[str, str | Path], *,
                reference: str, out_dir: Path, summary: str | Path | None = None) -> dict[str, Path]:
    """Figures of the MVI experiment, methods named as in the tables, the reference black.

    ROC curves per class pair and of any MVI (M0 vs M1 + M2) and calibration of P(MVI) for the Table-1
    methods; the confusion matrix of the reference; with `summary` (results/mvi/summary.csv) every method's
    and teacher's pooled AUC with its bootstrap CI; training curves of every history (fold 0).
    """
    table1 = [m for m in METHODS if m in method_predictions and "table1" in METHODS[m].tables]
    preds = {METHODS[m].display: pd.read_parquet(method_predictions[m]) for m in table1}
    ref_name = METHODS[reference].display
    ref = pd.read_parquet(method_predictions[reference])
    out = {"roc": figures.roc_pairwise_figure(preds, out_dir / "roc_pairwise.png", class_names=MVI_CLASSES,
                                              reference=ref_name),
           "roc_any_mvi": figures.roc_any_mvi_figure(preds, out_dir / "roc_any_mvi.png", reference=ref_name),
           "confusion": figures.confusion_matrix_figure(ref, out_dir / "confusion_matrix.png",
                                                        class_names=MVI_CLASSES,
                                                        title=f"{ref_name}: confusion matrix "
                                                              "(out-of-fold, row-normalised)"),
           "calibration": figures.calibration_figure(preds, out_dir / "calibration.png", reference=ref_name)}
    if summary is not None:
        out["auc"] = figures.auc_interval_figure(auc_interval_rows(pd.read_csv(summary)),
                                                 out_dir / "auc_intervals.png", reference=ref_name)
    for name, path in histories.items():
        out[f"curves_{name}"] = figures.training_curves_figure(path, out_dir / f"training_curves_{name}.png",
                                                               title=f"{_figure_name(name)}, fold 0")
    return out


GRADE_TABLE1 = [("2d", "local"), ("2d", "nonlocal"), ("2d", "cifa"), ("3d", "local"), ("3d", "nonlocal"),
                ("3d", "cifa")]
GRADE_TABLE2 = [(d, m) for d in ("2d", "3d") for m in ("concat", "dcca", "common", "individual", "cifa")]


def _grade_predictions(paths: list[str | Path]) -> pd.DataFrame:
    pred = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    return pred.assign(prob_0=1.0 - pred["prob_high"], prob_1=pred["prob_high"])


def grade_evaluation(prediction_paths: list[str | Path], spectra_path: str | Path | None, *, out_tables: Path,
                     out_dir: Path, out_figures: Path) -> dict[str, Path]:
    """Tables 1 and 2 of the grading paper, per-fold metrics, ROC curves and CIFA spectra."""
    import json

    pred = _grade_predictions(prediction_paths)
    keys = sorted({(d, m) for d, m in zip(pred["dim"], pred["method"])})
    per_fold = {key: per_fold_metrics(pred[(pred["dim"] == key[0]) & (pred["method"] == key[1])],
                                      binary_metrics, ("repeat", "fold")) for key in keys}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"per_fold": out_dir / "metrics_per_fold.csv"}
    _write_csv(pd.concat([f.assign(dim=d, method=m) for (d, m), f in per_fold.items()], ignore_index=True),
               written["per_fold"])
    for number, rows, names, stem in [(1, GRADE_TABLE1, tables.GRADING_TABLE1_ROWS, "table1_grade"),
                                      (2, GRADE_TABLE2, tables.GRADING_TABLE2_ROWS, "table2_grade_fusion")]:
        present = [(key, name) for key, name in zip(rows, names) if key in per_fold]
        if not present:
            continue
        builder = tables.grading_table1 if number == 1 else tables.grading_table2
        spec = builder({f"{d}_{m}": per_fold[(d, m)] for (d, m), _ in present},
                       display_names={f"{d}_{m}": name for (d, m), name in present})
        written.update({f"table{number}_{k}": v for k, v in spec.write(out_tables / stem).items()})

    first_repeat = pred[pred["repeat"] == pred["repeat"].min()]
    roc = {f"{d.upper()} {m}": first_repeat[(first_repeat["dim"] == d) & (first_repeat["method"] == m)]
           for d, m in keys}
    written["roc"] = figures.roc_binary_figure(roc, out_figures / "roc_grade.png")
    spectra = json.loads(Path(spectra_path).read_text()) if spectra_path else {}
    bars = {f"{dim.upper()} {part} ({branch})": np.asarray(s[f"sv_{part}_{i}"], dtype=float)
            for dim, s in spectra.items() for part in ("common", "individual")
            for i, branch in ((1, "local"), (2, "non-local"))}
    if bars:
        written["spectra"] = figures.cifa_spectra_figure(bars, out_figures / "cifa_spectra.png",
                                                         title="Common vs individual components (one fold)")
    return written
