"""The two papers' outcome classes and the labels table, each defined once.

MVI (CMD-Net paper; Cong et al. 2016): M0 no microvascular invasion; M1 at most five invaded vessels, all in the
peritumoral liver within 1 cm of the tumour surface; M2 more than five invaded vessels, or any more than 1 cm
from the tumour surface. Grade (grading paper): Edmondson I-II low, III-IV high.

`results/cohort/labels.parquet` holds `patient_id` (text), `mvi` and `grade` (class codes, missing allowed);
`read_labels` is its one reader.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cmdnet.errors import CohortError

MVI_CLASSES: tuple[str, ...] = ("M0", "M1", "M2")   # class code = index
GRADE_CLASSES: tuple[str, ...] = ("low", "high")
LABEL_COLUMNS = ("patient_id", "mvi", "grade")


def read_labels(path: str | Path) -> pd.DataFrame:
    """The labels table indexed by `patient_id`, with nullable integer `mvi` and `grade` columns."""
    table = pd.read_parquet(path)
    missing = [c for c in LABEL_COLUMNS if c not in table.columns]
    if missing:
        raise CohortError(f"labels table lacks columns {missing}", path=path)
    table = table.astype({"patient_id": str}).set_index("patient_id")
    return table[["mvi", "grade"]].astype("Int64")


def outcome(path: str | Path, column: str, ids: list[str] | None = None) -> pd.Series:
    """One outcome (`"mvi"` or `"grade"`) as int codes indexed by patient id.

    Without `ids`: every patient with that label. With `ids`: exactly those patients, in that order; a patient
    without the label (or absent) is an error naming them.
    """
    table = read_labels(path)
    if ids is None:
        return table[column].dropna().astype(int)
    absent = [p for p in ids if p not in table.index or pd.isna(table.at[p, column])]
    if absent:
        raise CohortError(f"{len(absent)} patient(s) without a {column} label: {', '.join(absent[:10])}", path=path)
    return table.loc[list(ids), column].astype(int)
