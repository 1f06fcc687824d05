"""Table rendering: cells, bold best, p-value notation, LaTeX escaping, CSV raw numbers, builders."""

import numpy as np
import pandas as pd
import pytest

from cmdnet.evaluation.tables import (binary_table, class_count_note, format_pvalue, latex_escape, mvi_table1, mvi_table2,
                           percent_header, render_table)


def test_format_pvalue_like_the_paper():
    assert format_pvalue(0.0122) == "1.22e-2"
    assert format_pvalue(0.000944) == "9.44e-4"
    assert format_pvalue(0.220) == "2.20e-1"
    assert format_pvalue(None) == "" and format_pvalue(float("nan")) == ""


def test_latex_escape():
    assert latex_escape("KD_ours & 50% #1 {x} $") == r"KD\_ours \& 50\% \#1 \{x\} \$"
    assert latex_escape("S → T ±") == r"S $\rightarrow$ T $\pm$"


def _tiny():
    return pd.DataFrame({"Method": ["KD_ours", "Our method"],
                         "AUC (%) mean": [0.7101, 0.7146], "AUC (%) sd": [0.0160, 0.0184],
                         "Loss mean": [0.30, 0.25], "Loss sd": [0.01, 0.02],
                         "p-value": [0.22, np.nan]})


def _formats(stem):
    """The four output paths of a table, by format."""
    return [stem.with_name(f"{stem.name}.{ext}") for ext in ("md", "csv", "tex", "html")]


def _by_format(paths):
    return {p.suffix[1:]: p for p in paths}


def test_render_table_writes_four_formats(tmp_path):
    paths = _by_format(render_table(_tiny(), title="Table 1: results", columns=["Method", "AUC (%)", "Loss", "p-value"],
                                    bold_best={"AUC (%)": "max", "Loss": "min"}, footnote="mean ± SD; t-test",
                                    out_paths=_formats(tmp_path / "t1")))
    assert set(paths) == {"md", "csv", "tex", "html"} and all(p.exists() for p in paths.values())
    md = paths["md"].read_text().splitlines()
    assert md[2] == "| Method | AUC (%) | Loss (%) | p-value |"
    assert md[4] == "| KD_ours | 71.01 ± 1.60 | 30.00 ± 1.00 | 2.20e-1 |"
    assert md[5] == "| Our method | **71.46 ± 1.84** | **25.00 ± 2.00** |  |"
    assert md[-1] == "mean ± SD; t-test"
    tex = paths["tex"].read_text()
    assert r"KD\_ours & 71.01 $\pm$ 1.60 & 30.00 $\pm$ 1.00 & 2.20e-1 \\" in tex
    assert r"\textbf{71.46 $\pm$ 1.84}" in tex and r"AUC (\%)" in tex
    assert r"\caption{Table 1: results}" in tex
    page = paths["html"].read_text()
    assert "<caption>Table 1: results</caption>" in page and "<th>Loss (%)</th>" in page
    assert "<td><b>71.46 ± 1.84</b></td>" in page and "<td>2.20e-1</td>" in page
    assert '<p class="note">mean ± SD; t-test</p>' in page
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_csv_values_are_in_the_unit_their_header_states(tmp_path):
    csv = pd.read_csv(render_table(_tiny(), title="t", columns=["Method", "AUC (%)", "Loss", "p-value"],
                                   out_paths=[tmp_path / "t.csv"])[0])
    assert "AUC (%) mean" in csv and "Loss (%) sd" in csv and "Loss mean" not in csv, list(csv.columns)
    np.testing.assert_allclose(csv["AUC (%) mean"], [71.01, 71.46], err_msg="a '(%)' column must hold percent")
    np.testing.assert_allclose(csv["Loss (%) sd"], [1.0, 2.0])
    assert csv["p-value"].iloc[0] == pytest.approx(0.22) and np.isnan(csv["p-value"].iloc[1])
    assert percent_header("Accuracy") == "Accuracy (%)" and percent_header("AUC (%)") == "AUC (%)"


def test_html_escapes_cell_text(tmp_path):
    rows = pd.DataFrame({"Method": ["<b>x</b> & y"], "AUC (%) mean": [0.5], "AUC (%) sd": [0.1]})
    page = render_table(rows, title="a < b", columns=["Method", "AUC (%)"], out_paths=[tmp_path / "t.html"])[0]
    text = page.read_text()
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in text and "<caption>a &lt; b</caption>" in text


def test_render_table_rejects_unknown_column(tmp_path):
    with pytest.raises(ValueError, match="F1"):
        render_table(_tiny(), title="x", columns=["Method", "F1"], out_paths=[tmp_path / "t.md"])


def _folds(rng, center, n=5, cols=("macro_f1", "accuracy", "auc_macro_ovo"), extra=None):
    data = {"repeat": 0, "fold": np.arange(n), "n": 12, **{c: center + rng.normal(0, 0.01, n) for c in cols}}
    data.update(extra or {})
    return pd.DataFrame(data)


def test_mvi_table1_rows_pvalue_columns_and_bold(tmp_path):
    rng = np.random.default_rng(0)
    per_fold = {"ours": _folds(rng, 0.72), "concat": _folds(rng, 0.65)}
    spec = mvi_table1(per_fold, reference="ours", p_values={"p-value (primary)": {"concat": 0.0012}},
                      display_names={"ours": "Our method", "concat": "Concat"}, footnote="Primary test: X.",
                      class_counts={"M0": 20, "M1": 20, "M2": 20})
    assert list(spec.rows["Method"]) == ["Concat", "Our method"]  # reference last
    assert spec.columns == ["Method", "F1-score (%)", "Accuracy (%)", "AUC (%)", "p-value (primary)"]
    assert spec.rows.loc[0, "p-value (primary)"] == 0.0012 and pd.isna(spec.rows.loc[1, "p-value (primary)"])
    assert spec.rows.loc[1, "AUC (%) mean"] == pytest.approx(per_fold["ours"]["auc_macro_ovo"].mean())
    assert "Primary test: X." in spec.footnote and "Hand & Till" in spec.footnote
    assert spec.footnote.endswith("n = 60 patients (M0 20, M1 20, M2 20)."), spec.footnote
    md = spec.write([tmp_path / "mvi_table1.md"])[0].read_text()
    assert "| **" in md.splitlines()[5]  # our method bold
    assert "1.20e-3" in md


def test_binary_table_shows_percentages_in_percent_and_calibration_as_it_is(tmp_path):
    rows = pd.DataFrame({"method": ["ours"], "Method": ["Our method"],
                         **{f"{m} mean": [v] for m, v in (("auc", 0.71), ("auc_ci_low", 0.6), ("auc_ci_high", 0.8),
                                                          ("sensitivity", 0.7), ("specificity", 0.65),
                                                          ("brier", 0.21), ("calibration_intercept", -0.12),
                                                          ("calibration_slope", 0.85))},
                         **{f"{m} sd": [np.nan] for m in ("auc", "auc_ci_low", "auc_ci_high", "sensitivity",
                                                          "specificity", "brier", "calibration_intercept",
                                                          "calibration_slope")}})
    paths = _by_format(binary_table(rows, footnote="Event: any MVI.").write(_formats(tmp_path / "b")))
    md = paths["md"].read_text().splitlines()
    assert md[2] == ("| Method | AUC (%) | AUC 95% CI low (%) | AUC 95% CI high (%) | Sensitivity (%) | "
                     "Specificity (%) | Brier score | Calibration intercept | Calibration slope |"), md[2]
    assert md[4] == "| Our method | **71.00** | 60.00 | 80.00 | 70.00 | 65.00 | **0.210** | -0.120 | 0.850 |", md[4]
    csv = pd.read_csv(paths["csv"])
    assert csv["AUC (%) mean"].item() == pytest.approx(71.0) and csv["Calibration slope mean"].item() == 0.85


def test_mvi_table2_and_class_count_note(tmp_path):
    rng = np.random.default_rng(2)
    spec = mvi_table2({"s_pre": _folds(rng, 0.6), "ours": _folds(rng, 0.7)},
                      teacher_student={"s_pre": "S", "ours": "S → T"},
                      display_names={"s_pre": "S-pre", "ours": "Our method"},
                      class_counts={"M0": 38, "M1": 28, "M2": 14})
    assert "n = 80 patients (M0 38, M1 28, M2 14)" in spec.footnote
    tex = spec.write([tmp_path / "t2.tex"])[0].read_text()
    assert r"Our method & S $\rightarrow$ T & \textbf{" in tex
    assert class_count_note({"low": 40, "high": 45}) == "n = 85 patients (low 40, high 45)"


def test_results_csv_pages_pair_mean_and_sd_and_ci_bounds(tmp_path):
    from cmdnet.evaluation.tables import csv_to_html

    csv = tmp_path / "summary.csv"
    pd.DataFrame({"name": ["ours"], "pooled_auc": [0.71234], "pooled_auc_ci_low": [0.6], "pooled_auc_ci_high": [0.8],
                  "macro_f1_mean": [0.5], "macro_f1_sd": [0.05], "ci": ["(0.0648611, 0.6758795)"],
                  "p": [0.00001234]}).to_csv(csv, index=False)
    page = csv_to_html(csv, tmp_path / "summary.html", title="Summary").read_text()
    for header in ("<th>pooled auc</th>", "<th>pooled auc 95% CI</th>", "<th>macro f1 mean ± SD</th>"):
        assert header in page, header
    for cell in ("<td>0.712</td>", "<td>0.600-0.800</td>", "<td>0.500 ± 0.050</td>", "<td>0.065-0.676</td>",
                 "<td>1.23e-05</td>"):
        assert cell in page, cell


def test_an_empty_results_csv_gives_a_page_not_an_error(tmp_path):
    from cmdnet.evaluation.tables import csv_to_html

    (tmp_path / "empty.csv").write_text("")
    page = csv_to_html(tmp_path / "empty.csv", tmp_path / "empty.html", title="No comparisons")
    assert "No comparisons" in page.read_text()
