"""Table rendering: cells, bold best, p-value notation, LaTeX escaping, CSV raw numbers, builders."""

import numpy as np
import pandas as pd
import pytest

from cmdnet.evaluation.tables import (format_pvalue, grading_table, latex_escape, mvi_table1, mvi_table2,
                           render_table)


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


def test_render_table_writes_three_formats(tmp_path):
    written = render_table(_tiny(), title="Table 1: results", columns=["Method", "AUC (%)", "Loss", "p-value"],
                           bold_best={"AUC (%)": "max", "Loss": "min"}, footnote="mean ± SD; t-test",
                           out_paths=[tmp_path / "t1.md", tmp_path / "t1.csv", tmp_path / "t1.tex"])
    paths = {p.suffix[1:]: p for p in written}
    assert set(paths) == {"md", "csv", "tex"} and all(p.exists() for p in paths.values())
    md = paths["md"].read_text().splitlines()
    assert md[2] == "| Method | AUC (%) | Loss | p-value |"
    assert md[4] == "| KD_ours | 71.01 ± 1.60 | 30.00 ± 1.00 | 2.20e-1 |"
    assert md[5] == "| Our method | **71.46 ± 1.84** | **25.00 ± 2.00** |  |"
    assert md[-1] == "mean ± SD; t-test"
    tex = paths["tex"].read_text()
    assert r"KD\_ours & 71.01 $\pm$ 1.60 & 30.00 $\pm$ 1.00 & 2.20e-1 \\" in tex
    assert r"\textbf{71.46 $\pm$ 1.84}" in tex and r"AUC (\%)" in tex
    assert r"\caption{Table 1: results}" in tex
    csv = pd.read_csv(paths["csv"])
    assert csv["AUC (%) mean"].tolist() == [0.7101, 0.7146]  # raw numbers kept
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


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
                      display_names={"ours": "Our method", "concat": "Concat"}, footnote="Primary test: X.")
    assert list(spec.rows["Method"]) == ["Concat", "Our method"]  # reference last
    assert spec.columns == ["Method", "F1-score (%)", "Accuracy (%)", "AUC (%)", "p-value (primary)"]
    assert spec.rows.loc[0, "p-value (primary)"] == 0.0012 and pd.isna(spec.rows.loc[1, "p-value (primary)"])
    assert spec.rows.loc[1, "AUC (%) mean"] == pytest.approx(per_fold["ours"]["auc_macro_ovo"].mean())
    assert "Primary test: X." in spec.footnote and "Hand & Till" in spec.footnote
    md = spec.write([tmp_path / "mvi_table1.md"])[0].read_text()
    assert "| **" in md.splitlines()[5]  # our method bold
    assert "1.20e-3" in md


def test_mvi_table2_and_grading_table(tmp_path):
    rng = np.random.default_rng(2)
    spec = mvi_table2({"s_pre": _folds(rng, 0.6), "ours": _folds(rng, 0.7)},
                      teacher_student={"s_pre": "S", "ours": "S → T"},
                      display_names={"s_pre": "S-pre", "ours": "Our method"})
    tex = spec.write([tmp_path / "t2.tex"])[0].read_text()
    assert r"Our method & S $\rightarrow$ T & \textbf{" in tex
    gcols = ("accuracy", "sensitivity", "specificity", "auc")
    per_fold = {m: _folds(rng, c, n=40, cols=gcols, extra={"repeat": np.repeat(np.arange(10), 4),
                                                           "fold": np.tile(np.arange(4), 10)})
                for m, c in (("local3d", 0.88), ("fusion3d", 0.93))}
    for frame in per_fold.values():
        frame.drop(columns="n", inplace=True)
    g = grading_table(per_fold, title="Table 1", display_names={"local3d": "3D local",
                                                               "fusion3d": "3D local and non-local fusion"})
    assert g.columns == ["Method", "Accuracy", "Sensitivity", "Specificity", "AUC"]
    assert "40 test folds" in g.footnote
    md = g.write([tmp_path / "g1.md"])[0].read_text().splitlines()
    assert md[5].startswith("| 3D local and non-local fusion | **93.")
