"""Evaluation of the MVI experiment: per-fold metrics, statistical tests, tables and figures.

The grading experiment's evaluation is `cmdnet.grading.evaluate.grade_evaluation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from . import figures, tables
from .atomic import atomic_path
from .methods import METHODS, method as method_spec
from .stats.bootstrap import bootstrap_ci
from .stats.metrics import macro_ovo_auc, mvi_metrics, per_fold_metrics, prob_columns
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
                                 display_names={m: METHODS[m].display for m in table2})
        written.update({f"table2_{k}": v for k, v in spec.write(out_tables / "table2_mvi_ablation").items()})
    return written


def mvi_figures(method_predictions: Mapping[str, str | Path], histories: Mapping[str, str | Path], *,
                reference: str, out_dir: Path) -> dict[str, Path]:
    """ROC curves per class pair (Table-1 methods), confusion matrix and calibration of the reference,
    and training curves."""
    preds = {METHODS[m].display: pd.read_parquet(p) for m, p in method_predictions.items()
             if "table1" in METHODS[m].tables}
    ref = pd.read_parquet(method_predictions[reference])
    out = {"roc": figures.roc_pairwise_figure(preds, out_dir / "roc_pairwise.png", class_names=MVI_CLASSES),
           "confusion": figures.confusion_matrix_figure(ref, out_dir / "confusion_matrix.png",
                                                        class_names=MVI_CLASSES,
                                                        title=f"{METHODS[reference].display}: confusion matrix "
                                                              "(out-of-fold, row-normalised)"),
           "calibration": figures.calibration_figure({METHODS[reference].display: ref},
                                                      out_dir / "calibration.png")}
    for name, path in histories.items():
        out[f"curves_{name}"] = figures.training_curves_figure(path, out_dir / f"training_curves_{name}.png",
                                                               title=f"Training curves: {name}")
    return out
