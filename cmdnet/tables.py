"""Rendering of the papers' tables as Markdown, CSV and LaTeX (written atomically).

`render_table` takes a frame with one row per table row. For each display column `name` the frame holds
either
* `"<name> mean"` and `"<name> sd"` (fractions in [0, 1]): rendered as "mean ± SD" in percent with two
  decimals, like the papers ("62.16 ± 3.35"); the best mean is bold (`bold_best`);
* `name` itself: text, or, for p-value columns (display name starting with "p-value"), a p-value in the
  paper's scientific notation ("1.22e-2"; empty for the reference row).
The CSV keeps the raw numbers (the frame as given) for reuse; Markdown and LaTeX show the formatted cells.

Builders turn per-fold metric frames (from `cmdnet.stats.per_fold_metrics`) into `TableSpec`s:
`mvi_table1`, `mvi_table2`, `grading_table` (a plain form of the grading paper's tables; the workflow's
grading tables, with their statistics, are built by `cmdnet.grading.evaluate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .stats.bootstrap import paired_bootstrap_macro_auc
from .stats.metrics import prob_columns, summarise
from .stats.tests import paired_t_over_folds

PM = "±"
RIGHTARROW = "→"
SD_NOTE = "mean ± SD over test folds (sample SD, ddof = 1), in %"

@dataclass
class TableSpec:
    """Everything `render_table` needs; builders return one so callers can inspect rows before writing."""

    rows: pd.DataFrame
    title: str
    columns: list[str]
    bold_best: dict[str, str] = field(default_factory=dict)
    footnote: str = ""

    def write(self, out_stem: Path) -> dict[str, Path]:
        return render_table(self.rows, title=self.title, columns=self.columns, bold_best=self.bold_best,
                            footnote=self.footnote, out_stem=out_stem)


# ---------------------------------------------------------------- formatting

def format_pvalue(p: float | None) -> str:
    """Scientific notation as in the MVI paper: 0.0122 -> "1.22e-2"; None/NaN -> ""."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    p = float(p)
    if p == 0.0:
        return "0"
    mantissa, exponent = f"{p:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def format_mean_sd(mean: float, sd: float, scale: float = 100.0) -> str:
    """"62.16 ± 3.35" from fractions (scale 100 = percent)."""
    if mean is None or not np.isfinite(mean):
        return ""
    if sd is None or not np.isfinite(sd):
        return f"{mean * scale:.2f}"
    return f"{mean * scale:.2f} {PM} {sd * scale:.2f}"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  PM: r"$\pm$", RIGHTARROW: r"$\rightarrow$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (and map ± and → to math symbols)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _markdown_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


# ---------------------------------------------------------------- rendering

def _is_pvalue_column(name: str) -> bool:
    return name.lower().startswith("p-value")


def _cells(rows: pd.DataFrame, columns: Sequence[str], bold_best: Mapping[str, str]
           ) -> tuple[list[list[str]], list[list[bool]]]:
    """Formatted text and bold flags, `(n_rows, n_columns)`."""
    text: list[list[str]] = [[] for _ in range(len(rows))]
    bold: list[list[bool]] = [[] for _ in range(len(rows))]
    for name in columns:
        mean_col, sd_col = f"{name} mean", f"{name} sd"
        if mean_col in rows.columns:
            means = rows[mean_col].to_numpy(dtype=float)
            sds = rows[sd_col].to_numpy(dtype=float) if sd_col in rows.columns else np.full(len(rows), np.nan)
            col_text = [format_mean_sd(m, s) for m, s in zip(means, sds)]
            col_bold = np.zeros(len(rows), dtype=bool)
            rule = bold_best.get(name)
            if rule is not None and np.isfinite(means).any():
                if rule not in ("max", "min"):
                    raise ValueError(f"bold_best[{name!r}] must be 'max' or 'min'; got {rule!r}")
                best = np.nanmax(means) if rule == "max" else np.nanmin(means)
                # compare at display precision so visually tied values are all bold
                col_bold = np.round(means * 100, 2) == np.round(best * 100, 2)
        elif name in rows.columns:
            if name in bold_best:
                raise ValueError(f"bold_best names {name!r}, which has no '{name} mean' column")
            values = rows[name].tolist()
            if _is_pvalue_column(name):
                col_text = [format_pvalue(None if v is None or pd.isna(v) else float(v)) for v in values]
            else:
                col_text = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else
                            (f"{v:.2f}" if isinstance(v, (float, np.floating)) else str(v)) for v in values]
            col_bold = np.zeros(len(rows), dtype=bool)
        else:
            raise ValueError(f"table column {name!r} has neither a '{name}' nor a '{name} mean' column in rows "
                             f"(columns: {list(rows.columns)})")
        for r in range(len(rows)):
            text[r].append(col_text[r])
            bold[r].append(bool(col_bold[r]))
    return text, bold


def _markdown(title: str, columns: Sequence[str], text, bold, footnote: str) -> str:
    lines = [f"**{_markdown_escape(title)}**", "",
             "| " + " | ".join(_markdown_escape(c) for c in columns) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(columns) - 1)) + "|"]
    for row_text, row_bold in zip(text, bold):
        cells = [f"**{_markdown_escape(t)}**" if b and t else _markdown_escape(t)
                 for t, b in zip(row_text, row_bold)]
        lines.append("| " + " | ".join(cells) + " |")
    if footnote:
        lines += ["", _markdown_escape(footnote)]
    return "\n".join(lines) + "\n"


def _latex(title: str, columns: Sequence[str], text, bold, footnote: str) -> str:
    spec = "l" + "c" * (len(columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(title)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in columns) + r" \\", r"\midrule"]
    for row_text, row_bold in zip(text, bold):
        cells = [rf"\textbf{{{latex_escape(t)}}}" if b and t else latex_escape(t)
                 for t, b in zip(row_text, row_bold)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if footnote:
        lines += [r"\par\smallskip", rf"{{\footnotesize {latex_escape(footnote)}\par}}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_table(rows: pd.DataFrame, *, title: str, columns: Sequence[str],
                 bold_best: Mapping[str, str] | None = None, footnote: str = "",
                 out_stem: str | Path) -> dict[str, Path]:
    """Write `<out_stem>.md`, `<out_stem>.csv` (raw numbers) and `<out_stem>.tex`; return their paths.

    `columns` are display names in order (the first is usually "Method"); see the module docstring for
    how each is looked up in `rows`. `bold_best` maps a mean-±-SD column to "max" or "min".
    """
    columns = list(columns)
    bold_best = dict(bold_best or {})
    text, bold = _cells(rows.reset_index(drop=True), columns, bold_best)
    out_stem = Path(out_stem)
    paths = {"md": out_stem.with_name(out_stem.name + ".md"),
             "csv": out_stem.with_name(out_stem.name + ".csv"),
             "tex": out_stem.with_name(out_stem.name + ".tex")}
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(_markdown(title, columns, text, bold, footnote), encoding="utf-8")
    with atomic_path(paths["csv"]) as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_path(paths["tex"]) as tmp:
        tmp.write_text(_latex(title, columns, text, bold, footnote), encoding="utf-8")
    return paths


# ---------------------------------------------------------------- builders

def _mean_sd_columns(per_fold: pd.DataFrame, metric_cols: Mapping[str, str]) -> dict[str, float]:
    summary = summarise(per_fold, list(metric_cols.values()))
    out: dict[str, float] = {}
    for display, metric in metric_cols.items():
        out[f"{display} mean"], out[f"{display} sd"] = summary[metric]
    return out


def _aligned_probs(pred_a: pd.DataFrame, pred_b: pd.DataFrame, name_a: str, name_b: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and both methods' probabilities on the same patients, in the same order."""
    merged = pred_a.merge(pred_b, on="patient_id", suffixes=("_a", "_b"), validate="one_to_one")
    if len(merged) != len(pred_a) or len(merged) != len(pred_b):
        raise ValueError(f"pooled predictions of {name_a!r} ({len(pred_a)} patients) and {name_b!r} "
                         f"({len(pred_b)}) do not cover the same patients")
    if not (merged["label_a"] == merged["label_b"]).all():
        raise ValueError(f"predictions of {name_a!r} and {name_b!r} disagree on true labels")
    pcols = prob_columns(pred_a)
    return (merged["label_a"].to_numpy(), merged[[f"{c}_a" for c in pcols]].to_numpy(),
            merged[[f"{c}_b" for c in pcols]].to_numpy())


MVI_METRICS = {"F1-score (%)": "macro_f1", "Accuracy (%)": "accuracy", "AUC (%)": "auc_macro_ovo"}


def mvi_table1(per_fold: Mapping[str, pd.DataFrame], *, reference: str = "ours",
               pooled_predictions: Mapping[str, pd.DataFrame] | None = None,
               display_names: Mapping[str, str] | None = None, n_boot: int = 2000, seed: int = 0,
               title: str = "Quantitative results of our network and state-of-the-art methods "
                            "(3-class MVI, five-fold cross-validation).") -> TableSpec:
    """MVI paper Table 1: Method | F1-score (%) | Accuracy (%) | AUC (%) | p-value (t-test) | p-value (bootstrap).

    `per_fold[method]`: per-fold metrics (`fold`, `macro_f1`, `accuracy`, `auc_macro_ovo`), e.g. from
    `per_fold_metrics(pred, mvi_metrics)`. Rows follow the order of `per_fold`, reference last (as in the
    paper). p-values compare each method with `reference` on the macro OvO AUC:
    paired t-test over folds, and (when `pooled_predictions[method]` with `patient_id`, `label`,
    `prob_c` are given) a paired stratified bootstrap of the pooled out-of-fold AUC.
    """
    if reference not in per_fold:
        raise ValueError(f"reference method {reference!r} has no per-fold metrics; have {list(per_fold)}")
    names = dict(display_names or {})
    order = [m for m in per_fold if m != reference] + [reference]
    ref_folds = per_fold[reference].sort_values("fold")
    rows = []
    for method in order:
        folds = per_fold[method].sort_values("fold")
        row: dict = {"method": method, "Method": names.get(method, method),
                     **_mean_sd_columns(folds, MVI_METRICS)}
        p_t = p_boot = None
        if method != reference:
            if list(folds["fold"]) != list(ref_folds["fold"]):
                raise ValueError(f"{method!r} and {reference!r} were evaluated on different folds")
            p_t = paired_t_over_folds(folds["auc_macro_ovo"], ref_folds["auc_macro_ovo"])["p"]
            if pooled_predictions is not None:
                labels, pa, pb = _aligned_probs(pooled_predictions[method], pooled_predictions[reference],
                                                method, reference)
                p_boot = paired_bootstrap_macro_auc(labels, pa, pb, n_boot=n_boot, seed=seed)["p"]
        row["p-value (t-test)"] = p_t
        row["p-value (bootstrap)"] = p_boot
        rows.append(row)
    columns = ["Method", *MVI_METRICS, "p-value (t-test)"]
    if pooled_predictions is not None:
        columns.append("p-value (bootstrap)")
    ref_name = names.get(reference, reference)
    footnote = (f"{SD_NOTE}. AUC: macro-averaged one-vs-one AUC (Hand & Till 2001); F1: macro F1. "
                f"p-values compare each method's AUC with {ref_name}: two-sided paired t-test over the "
                f"{len(ref_folds)} folds (scipy.stats.ttest_rel)")
    if pooled_predictions is not None:
        footnote += (f"; two-sided paired stratified bootstrap (n = {n_boot}, seed {seed}) of the macro "
                     f"one-vs-one AUC of the pooled out-of-fold predictions")
    footnote += ". Bold: best mean."
    return TableSpec(pd.DataFrame(rows), title, columns, {k: "max" for k in MVI_METRICS}, footnote)


def mvi_table2(per_fold: Mapping[str, pd.DataFrame], *, teacher_student: Mapping[str, str],
               display_names: Mapping[str, str] | None = None,
               title: str = "Quantitative results of our method and baseline networks of the ablation study "
                            "(S: student network; S → T: student distilled from teacher).") -> TableSpec:
    """MVI paper Table 2: Method | T/S | F1-score (%) | Accuracy (%) | AUC (%), rows in `per_fold` order.

    `teacher_student[method]` is the T/S cell, e.g. "S" or "S → T" (rendered as S $\\rightarrow$ T).
    """
    names = dict(display_names or {})
    rows = []
    for method, folds in per_fold.items():
        if method not in teacher_student:
            raise ValueError(f"no T/S entry for method {method!r}")
        rows.append({"method": method, "Method": names.get(method, method), "T/S": teacher_student[method],
                     **_mean_sd_columns(folds, MVI_METRICS)})
    footnote = (f"{SD_NOTE}. AUC: macro-averaged one-vs-one AUC (Hand & Till 2001); F1: macro F1. "
                "Bold: best mean.")
    return TableSpec(pd.DataFrame(rows), title, ["Method", "T/S", *MVI_METRICS],
                     {k: "max" for k in MVI_METRICS}, footnote)


GRADING_METRICS = {"Accuracy": "accuracy", "Sensitivity": "sensitivity", "Specificity": "specificity",
                   "AUC": "auc"}


def grading_table(per_fold: Mapping[str, pd.DataFrame], *, title: str,
                  display_names: Mapping[str, str] | None = None) -> TableSpec:
    """Grading paper Tables 1/2: Method | Accuracy | Sensitivity | Specificity | AUC (all %).

    `per_fold[method]`: per-fold metrics (`repeat`, `fold`, `accuracy`, `sensitivity`, `specificity`,
    `auc`), e.g. `per_fold_metrics(pred, binary_metrics, ("repeat", "fold"))`. Mean ± SD are over all
    repeat × fold test folds (40 for 4-fold × 10 repeats). Rows follow `per_fold` order; the paper's row
    names are `cmdnet.grading.methods.GradeMethod.display`.
    """
    names = dict(display_names or {})
    rows = [{"method": method, "Method": names.get(method, method), **_mean_sd_columns(folds, GRADING_METRICS)}
            for method, folds in per_fold.items()]
    n_folds = {len(f) for f in per_fold.values()}
    footnote = (f"mean ± SD over {'/'.join(map(str, sorted(n_folds)))} test folds (repeats × folds; sample SD, "
                "ddof = 1), in %. Positive class: high grade; prediction threshold 0.5 on P(high). "
                "Bold: best mean.")
    return TableSpec(pd.DataFrame(rows), title, ["Method", *GRADING_METRICS],
                     {k: "max" for k in GRADING_METRICS}, footnote)
