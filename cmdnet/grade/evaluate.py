"""Evaluation of the grading experiment: per-fold metrics, the paper's Tables 1 and 2, ROC curves, CIFA spectra."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cmdnet.data.sheets import write_csv
from cmdnet.evaluation import figures, tables
from cmdnet.evaluation.stats.metrics import binary_metrics, per_fold_metrics

GRADE_TABLE1 = [("2d", "local"), ("2d", "nonlocal"), ("2d", "cifa"), ("3d", "local"), ("3d", "nonlocal"),
                ("3d", "cifa")]
GRADE_TABLE2 = [(d, m) for d in ("2d", "3d") for m in ("concat", "dcca", "common", "individual", "cifa")]


def _grade_predictions(paths: Sequence[str | Path]) -> pd.DataFrame:
    pred = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    return pred.assign(prob_0=1.0 - pred["prob_high"], prob_1=pred["prob_high"])


def grade_evaluation(prediction_paths: Sequence[str | Path], spectra_path: str | Path | None, *,
                     out_per_fold: str | Path, out_figures: Sequence[str | Path],
                     out_table1: Sequence[str | Path] = (), out_table2: Sequence[str | Path] = ()) -> None:
    """Tables 1 and 2 of the grading paper (to the paths given), per-fold metrics, ROC curves and CIFA spectra."""
    pred = _grade_predictions(prediction_paths)
    keys = sorted({(d, m) for d, m in zip(pred["dim"], pred["method"])})
    per_fold = {key: per_fold_metrics(pred[(pred["dim"] == key[0]) & (pred["method"] == key[1])],
                                      binary_metrics, ("repeat", "fold")) for key in keys}
    write_csv(pd.concat([f.assign(dim=d, method=m) for (d, m), f in per_fold.items()], ignore_index=True),
              out_per_fold)
    for rows, names, outs, builder in [(GRADE_TABLE1, tables.GRADING_TABLE1_ROWS, out_table1, tables.grading_table1),
                                       (GRADE_TABLE2, tables.GRADING_TABLE2_ROWS, out_table2, tables.grading_table2)]:
        present = [(key, name) for key, name in zip(rows, names) if key in per_fold]
        if outs and present:
            builder({f"{d}_{m}": per_fold[(d, m)] for (d, m), _ in present},
                    display_names={f"{d}_{m}": name for (d, m), name in present}).write(outs)

    for out in map(Path, out_figures):
        if out.stem == "roc_grade":
            first_repeat = pred[pred["repeat"] == pred["repeat"].min()]
            figures.roc_binary_figure({f"{d.upper()} {m}": first_repeat[(first_repeat["dim"] == d)
                                                                        & (first_repeat["method"] == m)]
                                       for d, m in keys}, out)
        elif out.stem == "cifa_spectra":
            spectra = json.loads(Path(spectra_path).read_text()) if spectra_path else {}
            bars = {f"{dim.upper()} {part} ({branch})": np.asarray(s[f"sv_{part}_{i}"], dtype=float)
                    for dim, s in spectra.items() for part in ("common", "individual")
                    for i, branch in ((1, "local"), (2, "non-local"))}
            figures.cifa_spectra_figure(bars, out, title="Common vs individual components (one fold)")
        else:
            raise ValueError(f"no grading figure is called {out.stem!r}")
