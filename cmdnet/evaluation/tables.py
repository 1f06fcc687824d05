"""Rendering of the papers' tables as Markdown, CSV, LaTeX and HTML (written atomically).

`render_table` takes a frame with one row per table row. For each display column `name` the frame holds
either
* `"<name> mean"` and `"<name> sd"` (fractions in [0, 1]): rendered as "mean ± SD" in percent with two
  decimals, like the papers ("62.16 ± 3.35"); the best mean is bold (`bold_best`);
* `name` itself: text, or, for p-value columns (display name starting with "p-value"), a p-value in the
  paper's scientific notation ("1.22e-2"; empty for the reference row).

Units: one convention in every output. A mean ± SD column's header states its unit, "(%)" (added when the
display name lacks it: "Accuracy" -> "Accuracy (%)"), and every value under it is in that unit: the
formatted cells and the CSV's unrounded numbers alike (CSV columns "<header> mean" and "<header> sd",
e.g. "AUC (%) mean" = 71.46). Columns named in `plain` (a Brier score, a calibration slope) are shown as they are,
with three decimals and no unit. The CSV keeps every other column of the frame as given, for reuse;
Markdown, LaTeX and HTML (`<stem>.html`, a standalone page the Snakemake report shows inline) show the
formatted cells, the title and the footnote. Builders end the footnote with the number of patients per
class (`class_counts`).

Builders turn per-fold metric frames (from `cmdnet.evaluation.stats.metrics.per_fold_metrics`) and statistics the
caller computed into `TableSpec`s: `mvi_table1`, `mvi_table2`, `binary_table` (the grading tables are built in
`cmdnet.grade.evaluate`). This module
computes no statistic; it renders. Each output path's suffix chooses its format (`render_table`).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cmdnet.atomic import atomic_path
from cmdnet.evaluation.stats.metrics import summarise

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
    plain: tuple[str, ...] = ()

    def write(self, out_paths: Sequence[str | Path]) -> list[Path]:
        return render_table(self.rows, title=self.title, columns=self.columns, bold_best=self.bold_best,
                            footnote=self.footnote, plain=self.plain, out_paths=out_paths)


def class_count_note(class_counts: Mapping[str, int]) -> str:
    """"n = 80 patients (M0 38, M1 28, M2 14)" from `{class name: patients}` in the given order."""
    parts = ", ".join(f"{name} {int(n)}" for name, n in class_counts.items())
    return f"n = {sum(int(n) for n in class_counts.values())} patients ({parts})"


def class_counts_of(pred: pd.DataFrame, class_names: Sequence[str]) -> dict[str, int]:
    """Patients per class of a pooled prediction frame (`label` = class index; one row per patient)."""
    counts = pred["label"].astype(int).value_counts()
    return {name: int(counts.get(c, 0)) for c, name in enumerate(class_names)}


def _with_cohort(footnote: str, class_counts: Mapping[str, int] | None) -> str:
    return f"{footnote} {class_count_note(class_counts)}." if class_counts else footnote


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


def format_mean_sd(mean: float, sd: float, scale: float = 100.0, decimals: int = 2) -> str:
    """"62.16 ± 3.35" from fractions (scale 100 = percent)."""
    if mean is None or not np.isfinite(mean):
        return ""
    if sd is None or not np.isfinite(sd):
        return f"{mean * scale:.{decimals}f}"
    return f"{mean * scale:.{decimals}f} {PM} {sd * scale:.{decimals}f}"


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


PERCENT = "(%)"


def percent_header(name: str) -> str:
    """The header of a mean ± SD column: its display name with the unit "(%)" (added if missing)."""
    return name if PERCENT in name else f"{name} {PERCENT}"


def _headers(rows: pd.DataFrame, columns: Sequence[str], plain: Sequence[str] = ()) -> list[str]:
    return [percent_header(c) if f"{c} mean" in rows.columns and c not in plain else c for c in columns]


def _csv_frame(rows: pd.DataFrame, columns: Sequence[str], plain: Sequence[str] = ()) -> pd.DataFrame:
    """The frame as given, with every mean/SD pair of a display column in percent under its unit header."""
    out = rows.copy()
    for name in columns:
        if f"{name} mean" not in rows.columns or name in plain:
            continue
        header = percent_header(name)
        for stat in ("mean", "sd"):
            if f"{name} {stat}" in rows.columns:
                out[f"{name} {stat}"] = rows[f"{name} {stat}"].astype(float) * 100.0
        out = out.rename(columns={f"{name} mean": f"{header} mean", f"{name} sd": f"{header} sd"})
    return out


def _cells(rows: pd.DataFrame, columns: Sequence[str], bold_best: Mapping[str, str], plain: Sequence[str] = ()
           ) -> tuple[list[list[str]], list[list[bool]]]:
    """Formatted text and bold flags, `(n_rows, n_columns)`."""
    text: list[list[str]] = [[] for _ in range(len(rows))]
    bold: list[list[bool]] = [[] for _ in range(len(rows))]
    for name in columns:
        mean_col, sd_col = f"{name} mean", f"{name} sd"
        if mean_col in rows.columns:
            means = rows[mean_col].to_numpy(dtype=float)
            sds = rows[sd_col].to_numpy(dtype=float) if sd_col in rows.columns else np.full(len(rows), np.nan)
            scale, decimals = (1.0, 3) if name in plain else (100.0, 2)
            col_text = [format_mean_sd(m, s, scale, decimals) for m, s in zip(means, sds)]
            col_bold = np.zeros(len(rows), dtype=bool)
            rule = bold_best.get(name)
            compared = (~rows[OUTSIDE].to_numpy(dtype=bool) if OUTSIDE in rows.columns
                        else np.ones(len(rows), dtype=bool))
            if rule is not None and np.isfinite(means[compared]).any():
                if rule not in ("max", "min"):
                    raise ValueError(f"bold_best[{name!r}] must be 'max' or 'min'; got {rule!r}")
                best = np.nanmax(means[compared]) if rule == "max" else np.nanmin(means[compared])
                # compare at display precision so visually tied values are all bold
                col_bold = compared & (np.round(means * scale, decimals) == np.round(best * scale, decimals))
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


_HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1em; color: #111; }
table { border-collapse: collapse; font-size: 14px; margin-bottom: 1.2em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.5em; max-width: 60em; }
thead th { border-top: 2px solid #111; border-bottom: 1px solid #111; padding: 4px 10px; text-align: right; }
tbody td { padding: 3px 10px; text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:last-child td { border-bottom: 2px solid #111; }
th:first-child, td:first-child { text-align: left; }
table.text td { text-align: left; white-space: normal; max-width: 50em; vertical-align: top; }
p.note { font-size: 12px; color: #333; max-width: 60em; margin-bottom: 2em; }
"""


def html_table(title: str, columns: Sequence[str] | None, text, bold, footnote: str = "", *,
               css_class: str = "") -> str:
    """An HTML `<table>` (caption `title`, header `columns` unless None) and its footnote paragraph.

    `css_class` "text" left-aligns and wraps every cell (for tables of prose rather than numbers).
    """
    esc = html.escape
    head = "<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr></thead>" if columns else ""
    body = []
    for row_text, row_bold in zip(text, bold):
        cells = "".join(f"<td><b>{esc(t)}</b></td>" if b and t else f"<td>{esc(t)}</td>"
                        for t, b in zip(row_text, row_bold))
        body.append(f"<tr>{cells}</tr>")
    note = f'<p class="note">{esc(footnote)}</p>' if footnote else ""
    opening = f'<table class="{esc(css_class)}">' if css_class else "<table>"
    rows = "\n".join(body)
    return f"{opening}<caption>{esc(title)}</caption>{head}\n<tbody>\n{rows}\n</tbody></table>\n{note}\n"


def html_page(title: str, *fragments: str) -> str:
    """A standalone HTML page (inline style, no external resource) holding the given fragments."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_HTML_STYLE}</style></head><body>\n"
            + "\n".join(fragments) + "</body></html>\n")


def _html(title: str, columns: Sequence[str], text, bold, footnote: str) -> str:
    return html_page(title, html_table(title, columns, text, bold, footnote))


def render_table(rows: pd.DataFrame, *, title: str, columns: Sequence[str],
                 bold_best: Mapping[str, str] | None = None, footnote: str = "", plain: Sequence[str] = (),
                 out_paths: Sequence[str | Path]) -> list[Path]:
    """Write the table to each of `out_paths`, in the format its suffix names: `.md`, `.csv` (unrounded numbers),
    `.tex` or `.html` (a standalone page); return the paths.

    `columns` are display names in order (the first is usually "Method"); see the module docstring for
    how each is looked up in `rows` and for the unit convention of the headers. `bold_best` maps a
    mean-±-SD column to "max" or "min"; `plain` names mean-±-SD columns that are not percentages.
    """
    columns = list(columns)
    bold_best = dict(bold_best or {})
    text, bold = _cells(rows.reset_index(drop=True), columns, bold_best, plain)
    headers = _headers(rows, columns, plain)
    writers = {".md": lambda: _markdown(title, headers, text, bold, footnote),
               ".tex": lambda: _latex(title, headers, text, bold, footnote),
               ".html": lambda: _html(title, headers, text, bold, footnote)}
    written = []
    for path in map(Path, out_paths):
        if path.suffix == ".csv":
            with atomic_path(path) as tmp:
                _csv_frame(rows, columns, plain).to_csv(tmp, index=False)
        elif path.suffix in writers:
            with atomic_path(path) as tmp:
                tmp.write_text(writers[path.suffix](), encoding="utf-8")
        else:
            raise ValueError(f"cannot render a table as {path.name}: known formats .md, .csv, .tex, .html")
        written.append(path)
    return written


# ---------------------------------------------------------------- builders

def _mean_sd_columns(per_fold: pd.DataFrame, metric_cols: Mapping[str, str]) -> dict[str, float]:
    summary = summarise(per_fold, list(metric_cols.values()))
    out: dict[str, float] = {}
    for display, metric in metric_cols.items():
        out[f"{display} mean"], out[f"{display} sd"] = summary[metric]
    return out


MVI_METRICS = {"F1-score (%)": "macro_f1", "Accuracy (%)": "accuracy", "AUC (%)": "auc_macro_ovo"}


REFERENCE_MARK = "†"
OUTSIDE = "outside_comparison"   # a row shown for reference: not compared, never bold


def mvi_table1(per_fold: Mapping[str, pd.DataFrame], *, reference: str,
               p_values: Mapping[str, Mapping[str, float | None]] | None = None,
               display_names: Mapping[str, str] | None = None, footnote: str = "",
               title: str = "Quantitative results of our network and state-of-the-art methods (3-class MVI).",
               class_counts: Mapping[str, int] | None = None,
               reference_rows: Mapping[str, pd.DataFrame] | None = None) -> TableSpec:
    """MVI paper Table 1: Method | F1-score (%) | Accuracy (%) | AUC (%) | one column per entry of `p_values`.

    `per_fold[method]`: per-fold metrics (`macro_f1`, `accuracy`, `auc_macro_ovo`), e.g. from
    `per_fold_metrics(pred, mvi_metrics, ("repeat", "fold"))`. Rows follow the order of `per_fold`, reference last
    (as in the paper). `p_values[column][method]` are computed by the caller (`cmdnet.evaluation.mvi`), which also
    says in `footnote` what they are; the reference row's cells stay empty. `class_counts` ends the footnote.
    `reference_rows` (per-fold metrics of methods that are not MRI-only, e.g. the clinical-only regression) follow
    the reference row, marked †, without p-values and never bold.
    """
    if reference not in per_fold:
        raise ValueError(f"reference method {reference!r} has no per-fold metrics; have {list(per_fold)}")
    names = dict(display_names or {})
    p_values = dict(p_values or {})
    order = [m for m in per_fold if m != reference] + [reference]
    rows = []
    for method in order:
        row: dict = {"method": method, "Method": names.get(method, method),
                     **_mean_sd_columns(per_fold[method], MVI_METRICS)}
        for column, values in p_values.items():
            row[column] = None if method == reference else values.get(method)
        rows.append(row)
    for method, folds in (reference_rows or {}).items():
        rows.append({"method": method, "Method": f"{names.get(method, method)} {REFERENCE_MARK}", OUTSIDE: True,
                     **_mean_sd_columns(folds, MVI_METRICS), **{column: None for column in p_values}})
    note = f"{SD_NOTE}. AUC: macro-averaged one-vs-one AUC (Hand & Till 2001); F1: macro F1. {footnote}".strip()
    if reference_rows:
        note += (f" {REFERENCE_MARK} Uses clinical data; not an MRI-only method: shown for what a linear model of "
                 "the clinical items alone predicts on the same folds; not tested in this table and never bold.")
    frame = pd.DataFrame(rows)
    if OUTSIDE in frame:
        frame[OUTSIDE] = frame[OUTSIDE].fillna(False).astype(bool)
    return TableSpec(frame, title, ["Method", *MVI_METRICS, *p_values],
                     {k: "max" for k in MVI_METRICS}, _with_cohort(note + " Bold: best mean.", class_counts))


def mvi_table2(per_fold: Mapping[str, pd.DataFrame], *, teacher_student: Mapping[str, str],
               display_names: Mapping[str, str] | None = None, footnote: str = "",
               title: str = "Quantitative results of our method and baseline networks of the ablation study "
                            "(S: student network; S → T: student distilled from teacher).",
               class_counts: Mapping[str, int] | None = None) -> TableSpec:
    """MVI paper Table 2: Method | T/S | F1-score (%) | Accuracy (%) | AUC (%), rows in `per_fold` order.

    `teacher_student[method]` is the T/S cell, e.g. "S" or "S → T" (rendered as S $\\rightarrow$ T).
    `class_counts` (patients per class) ends the footnote.
    """
    names = dict(display_names or {})
    rows = []
    for method, folds in per_fold.items():
        if method not in teacher_student:
            raise ValueError(f"no T/S entry for method {method!r}")
        rows.append({"method": method, "Method": names.get(method, method), "T/S": teacher_student[method],
                     **_mean_sd_columns(folds, MVI_METRICS)})
    note = f"{SD_NOTE}. AUC: macro-averaged one-vs-one AUC (Hand & Till 2001); F1: macro F1. {footnote}".strip()
    return TableSpec(pd.DataFrame(rows), title, ["Method", "T/S", *MVI_METRICS],
                     {k: "max" for k in MVI_METRICS}, _with_cohort(note + " Bold: best mean.", class_counts))


BINARY_METRICS = {"AUC": "auc", "AUC 95% CI low": "auc_ci_low", "AUC 95% CI high": "auc_ci_high",
                  "Sensitivity": "sensitivity", "Specificity": "specificity", "Brier score": "brier",
                  "Calibration intercept": "calibration_intercept", "Calibration slope": "calibration_slope"}
PLAIN_BINARY = ("Brier score", "Calibration intercept", "Calibration slope")


def binary_table(rows: pd.DataFrame, *, footnote: str = "", class_counts: Mapping[str, int] | None = None,
                 title: str = "Any microvascular invasion (M0 vs M1 + M2): discrimination, operating point and "
                              "calibration of every method") -> TableSpec:
    """The binary-endpoint table: `rows` holds `method`, `Method` and `<metric> mean`/`<metric> sd` for the
    metrics of `cmdnet.evaluation.stats.binary.BINARY_ENDPOINT_COLUMNS` (fractions; AUC, its CI, sensitivity and
    specificity shown in %, the Brier score and calibration intercept and slope as they are)."""
    frame = rows.copy()
    for display, metric in BINARY_METRICS.items():
        frame[f"{display} mean"], frame[f"{display} sd"] = frame[f"{metric} mean"], frame[f"{metric} sd"]
    frame = frame.drop(columns=[f"{m} {s}" for m in BINARY_METRICS.values() for s in ("mean", "sd")])
    return TableSpec(frame, title, ["Method", *BINARY_METRICS], {"AUC": "max", "Brier score": "min"},
                     _with_cohort(f"{footnote} Bold: best mean.".strip(), class_counts), plain=PLAIN_BINARY)


# ---------------------------------------------------------------- any CSV as a readable HTML page

def _html_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}" if value != 0 and abs(value) < 1e-3 else f"{value:.3f}"
    pair = _PAIR_TEXT.fullmatch(str(value))
    if pair:  # an interval written as "(low, high)"
        return f"{_html_cell(float(pair.group(1)))}-{_html_cell(float(pair.group(2)))}"
    return str(value)


_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
_PAIR_TEXT = re.compile(rf"[(\[]{_NUMBER},{_NUMBER}[)\]]")


_COLUMN_PAIRS = (("_mean", "_sd", " mean ± SD", f" {PM} "), ("_ci_low", "_ci_high", " 95% CI", "-"))


def _readable_columns(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and cells: `X_mean` + `X_sd` as one "X mean ± SD" column, `X_ci_low` + `X_ci_high` as one
    "X 95% CI" column, underscores as spaces."""
    headers, cells, used = [], [], set()
    columns = list(frame.columns)
    for col in columns:
        if col in used:
            continue
        for first, second, label, join in _COLUMN_PAIRS:
            stem = col[: -len(first)] if col.endswith(first) else None
            if stem is not None and f"{stem}{second}" in columns:
                used |= {col, f"{stem}{second}"}
                headers.append(f"{stem}{label}".replace("_", " "))
                cells.append([f"{_html_cell(a)}{join}{_html_cell(b)}" if _html_cell(a) else ""
                              for a, b in zip(frame[col], frame[f"{stem}{second}"])])
                break
        else:
            used.add(col)
            headers.append(str(col).replace("_", " "))
            cells.append([_html_cell(v) for v in frame[col]])
    return headers, [list(row) for row in zip(*cells)] if cells else []


def csv_to_html(csv_path: str | Path, out_path: str | Path, *, title: str, note: str = "") -> Path:
    """Render a results CSV (e.g. results/mvi/summary.csv) as a standalone HTML page with `title` and `note`.

    Every column of the file, made readable (`_readable_columns`: mean and SD, and CI bounds, side by side in
    one cell); numbers with three decimals (below 0.001: three significant digits), intervals "(a, b)" as
    "a-b", empty cells empty. For the Snakemake report, which shows HTML inline but only offers CSV files for
    download; the CSV keeps the unrounded numbers.
    """
    try:
        frame = pd.read_csv(csv_path)
    except pd.errors.EmptyDataError:   # e.g. no DeLong comparison when the reference is the only method
        frame = pd.DataFrame()
    headers, text = _readable_columns(frame)
    bold = [[False] * len(headers) for _ in text]
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_text(_html(title, headers, text, bold, note), encoding="utf-8")
    return out_path
