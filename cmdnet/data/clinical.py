"""Clinical data: the item dictionary, cleaning of the clinical sheet, fold-wise preprocessing.

Formats (docs/architecture.md, "Clinical sheet", "Clinical dictionary"). Cleaning rules:

* Identifier columns (default `name`) are dropped on reading; their values never reach an output or
  an error message.
* Missing: an empty cell, or one of `NA`, `N/A`, `NaN`, `null`, `none`, `missing` (any case) when it
  is not itself one of the item's declared categories.
* Numeric items accept plain decimals (`12`, `-0.5`, `1e3`) with surrounding spaces and an optional
  leading `<` or `>`, which marks a value at a detection limit and is read as the limit itself
  (`"<20"` -> 20.0, `">1000"` -> 1000.0). Anything else (`"1,234.5"`, `"12 mg"`, `"high"`) is an
  error. Values outside the dictionary's `[min, max]` are an error, or with
  `out_of_range="missing"` become missing and are counted in the report.
* Error messages name the patient and the column and describe a bad cell by its kind and length
  (`text (11 characters)`), never by its content: a column shift can put a name into any column.
* Binary items: the cell must be one of the two declared categories (case-insensitive; a numeric cell
  such as `1.0` matches a category `1`); the first category maps to 0, the second to 1.
* Categorical items: the cell must be one of the declared categories (case-insensitive), stored as a
  pandas Categorical whose categories are the dictionary's, in the dictionary's order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cmdnet.data.cohort import id_problems
from cmdnet.errors import CohortError
from cmdnet.data.sheets import read_sheet, describe_cell

ITEM_TYPES = ("numeric", "binary", "categorical")
DICTIONARY_COLUMNS = ("column", "name", "type", "unit", "min", "max", "categories", "description")
MISSING_TOKENS = frozenset({"na", "n/a", "nan", "null", "none", "missing"})
INDICATOR_SUFFIX = "__missing"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_LIMIT_NUMBER = re.compile(r"(?:[<>]\s*)?(" + _NUMBER.pattern + r")")
_SNAKE = re.compile(r"[a-z][a-z0-9_]*")
_MAX_LISTED = 10


@dataclass(frozen=True)
class ClinicalItem:
    """One row of the clinical dictionary, parsed."""

    column: str
    name: str
    type: str
    unit: str
    min: float | None
    max: float | None
    categories: tuple[str, ...]


def parse_number(text: str) -> float:
    """A clinical numeric cell as float: plain decimal, optional leading `<`/`>` (read as the limit).

    Raises ValueError for anything else (thousands separators, units, words).
    """
    match = _LIMIT_NUMBER.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a number: {text!r}")
    value = float(match.group(1))
    if not np.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _is_missing(raw: Any) -> bool:
    return pd.isna(raw) or str(raw).strip().casefold() in MISSING_TOKENS or str(raw).strip() == ""


def _match_category(raw: str, categories: Sequence[str]) -> str | None:
    """The declared category `raw` stands for (case-insensitive, or numerically equal), else None."""
    text = str(raw).strip()
    for cat in categories:
        if text.casefold() == cat.casefold():
            return cat
    if _NUMBER.fullmatch(text):
        for cat in categories:
            if _NUMBER.fullmatch(cat) and float(cat) == float(text):
                return cat
    return None


# --------------------------------------------------------------------------------------------------
# Dictionary


def _validate_dictionary(df: pd.DataFrame, path: str | Path | None) -> pd.DataFrame:
    """Check a dictionary table and return it in canonical form (see `load_dictionary`)."""
    absent = [c for c in ("column", "name", "type") if c not in df.columns]
    if absent:
        raise CohortError(f"clinical dictionary lacks columns {', '.join(map(repr, absent))}; "
                          f"columns found: {', '.join(map(repr, df.columns))}", path=path)
    df = df.copy()
    for c in DICTIONARY_COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    rows = []
    for i, rec in enumerate(df[list(DICTIONARY_COLUMNS)].to_dict("records")):
        where = f"dictionary row {i + 2}"
        text = {k: ("" if pd.isna(v) else str(v).strip()) for k, v in rec.items()}
        if not text["column"]:
            raise CohortError(f"{where}: empty 'column'", path=path)
        if not _SNAKE.fullmatch(text["name"]) or text["name"] == "patient_id":
            raise CohortError(f"{where} ({text['column']!r}): 'name' {text['name']!r} must be "
                              "snake_case (a-z, 0-9, _) and not 'patient_id'", path=path)
        if text["name"].endswith(INDICATOR_SUFFIX):
            raise CohortError(f"{where}: name {text['name']!r} may not end in {INDICATOR_SUFFIX!r} "
                              "(reserved for missing-value indicators)", path=path)
        if text["type"] not in ITEM_TYPES:
            raise CohortError(f"{where} ({text['name']}): type {text['type']!r} is not one of "
                              f"{', '.join(ITEM_TYPES)}", path=path)
        bounds = {}
        for b in ("min", "max"):
            if text[b] and not _NUMBER.fullmatch(text[b]):
                raise CohortError(f"{where} ({text['name']}): {b} {text[b]!r} is not a number",
                                  path=path)
            bounds[b] = float(text[b]) if text[b] else math.nan
        if bounds["min"] > bounds["max"]:
            raise CohortError(f"{where} ({text['name']}): min {bounds['min']} > max {bounds['max']}",
                              path=path)
        cats = [c.strip() for c in text["categories"].split("|")] if text["categories"] else []
        if any(not c for c in cats) or len({c.casefold() for c in cats}) != len(cats):
            raise CohortError(f"{where} ({text['name']}): categories {text['categories']!r} contain "
                              "an empty or repeated value", path=path)
        if text["type"] == "binary" and len(cats) != 2:
            raise CohortError(f"{where} ({text['name']}): a binary item needs exactly two categories "
                              f"(first -> 0, second -> 1), got {text['categories']!r}", path=path)
        if text["type"] == "categorical" and len(cats) < 2:
            raise CohortError(f"{where} ({text['name']}): a categorical item needs at least two "
                              f"categories, got {text['categories']!r}", path=path)
        if text["type"] == "numeric" and cats:
            raise CohortError(f"{where} ({text['name']}): a numeric item has no categories, got "
                              f"{text['categories']!r} (is the type wrong?)", path=path)
        if text["type"] != "numeric" and (text["min"] or text["max"]):
            raise CohortError(f"{where} ({text['name']}): min/max apply to numeric items only",
                              path=path)
        rows.append({**text, **bounds, "categories": "|".join(cats)})
    out = pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS))
    for key in ("column", "name"):
        counts = out[key].value_counts()
        repeated = sorted(counts.index[counts > 1])
        if repeated:
            raise CohortError(f"clinical dictionary repeats {key} {', '.join(map(repr, repeated))}",
                              path=path)
    out["min"] = out["min"].astype("float64")
    out["max"] = out["max"].astype("float64")
    return out


def load_dictionary(path: str | Path) -> pd.DataFrame:
    """Read and validate the clinical dictionary.

    Returns one row per item with columns `column`, `name`, `type`, `unit`, `categories`,
    `description` (str; `categories` `|`-separated, `""` when none) and `min`, `max` (float64, NaN
    when unchecked). Names are unique snake_case; binary items have exactly two categories,
    categorical items at least two, numeric items none.
    """
    return _validate_dictionary(read_sheet(path), path)


def dictionary_items(dictionary: pd.DataFrame) -> list[ClinicalItem]:
    """The rows of a (validated) dictionary table as `ClinicalItem`s, in dictionary order."""
    df = _validate_dictionary(dictionary, None)
    return [ClinicalItem(column=r["column"], name=r["name"], type=r["type"], unit=r["unit"],
                         min=None if math.isnan(r["min"]) else float(r["min"]),
                         max=None if math.isnan(r["max"]) else float(r["max"]),
                         categories=tuple(r["categories"].split("|")) if r["categories"] else ())
            for r in df.to_dict("records")]


# --------------------------------------------------------------------------------------------------
# Cleaning


def _raise_first(problems: list[tuple[str, str]], column: str, path: Path) -> None:
    """Raise the first (patient, problem) of a column, mentioning how many more there are."""
    if not problems:
        return
    pid, problem = problems[0]
    rest = [p for p, _ in problems[1:]]
    if rest:
        listed = ", ".join(rest[:_MAX_LISTED]) + (", ..." if len(rest) > _MAX_LISTED else "")
        problem += f" ({len(rest)} more invalid values in column {column!r}: patients {listed})"
    raise CohortError(problem, patient=pid, path=path)


def _clean_numeric(item: ClinicalItem, raw: pd.Series, out_of_range: str
                   ) -> tuple[pd.Series, int, list[tuple[str, str]]]:
    """Values, number set missing for being out of range, and (patient, problem) for each bad cell."""
    values = np.full(len(raw), np.nan)
    problems: list[tuple[str, str]] = []
    n_out = 0
    lo = -math.inf if item.min is None else item.min
    hi = math.inf if item.max is None else item.max
    for i, (pid, cell) in enumerate(raw.items()):
        if _is_missing(cell):
            continue
        try:
            x = parse_number(str(cell))
        except ValueError:
            problems.append((pid, f"column {item.column!r}: {describe_cell(cell)} is not a number (allowed: "
                                  "plain decimals, optionally with a leading '<' or '>')"))
            continue
        if not lo <= x <= hi:
            if out_of_range == "missing":
                n_out += 1
                continue
            unit = f" {item.unit}" if item.unit else ""
            side = "above" if x > hi else "below"
            problems.append((pid, f"column {item.column!r}: a value {side} the plausible range "
                                  f"[{item.min}, {item.max}]{unit} (a unit mix-up? out_of_range='missing' "
                                  "treats such values as missing)"))
            continue
        values[i] = x
    return pd.Series(values, index=raw.index, dtype="float64"), n_out, problems


def _clean_categories(item: ClinicalItem, raw: pd.Series) -> tuple[pd.Series, list[tuple[str, str]]]:
    matched: list[str | None] = []
    problems: list[tuple[str, str]] = []
    for pid, cell in raw.items():
        cat = None if pd.isna(cell) else _match_category(str(cell), item.categories)
        if cat is None and not _is_missing(cell):
            kind = "two binary categories" if item.type == "binary" else "declared categories"
            problems.append((pid, f"column {item.column!r}: {describe_cell(cell)} is not one of the {kind} "
                                  f"{'|'.join(item.categories)}"))
        matched.append(cat)
    if item.type == "binary":
        codes = [np.nan if c is None else float(item.categories.index(c)) for c in matched]
        return pd.Series(codes, index=raw.index, dtype="float64"), problems
    return pd.Series(pd.Categorical(matched, categories=list(item.categories)), index=raw.index), problems


def _clean(clinical_path: Path, dictionary_path: str | Path, *, cohort_ids: list[str], id_column: str,
           identifier_columns: Iterable[str], out_of_range: str, collect: list[CohortError] | None
           ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """`clean_clinical`'s work. Without `collect` the first problem is raised; with it every problem is
    appended to `collect` and the result is None when there was any."""
    def fail(err: CohortError) -> None:
        if collect is None:
            raise err
        collect.append(err)

    n_before = len(collect) if collect is not None else 0
    try:
        items = dictionary_items(load_dictionary(dictionary_path))
        sheet = read_sheet(clinical_path)
    except CohortError as err:
        fail(err)
        return None
    hidden = {c.casefold() for c in identifier_columns}
    clash = [it.column for it in items if it.column.casefold() in hidden]
    if clash:
        fail(CohortError(f"dictionary items {', '.join(map(repr, clash))} are identifier columns, "
                         "which are never read", path=dictionary_path))
        return None
    sheet = sheet.drop(columns=[c for c in sheet.columns if c.casefold() in hidden])

    ids, problems = id_problems(sheet, id_column, clinical_path)
    for err in problems:
        fail(err)
    if ids is None:
        return None
    absent_ids = [pid for pid in cohort_ids if pid not in set(ids)]
    if absent_ids:
        fail(CohortError(f"{len(absent_ids)} cohort patients are absent from the clinical sheet: "
                         f"{', '.join(absent_ids)}", path=clinical_path))
    absent_cols = [it.column for it in items if it.column not in sheet.columns]
    if absent_cols:
        fail(CohortError(f"dictionary columns absent from the clinical sheet: "
                         f"{', '.join(map(repr, absent_cols))}", path=clinical_path))

    present = [pid for pid in cohort_ids if pid in set(ids)]
    sheet = sheet.drop_duplicates(subset=id_column, keep="first")
    sheet.index = pd.Index(sheet[id_column].astype(str))
    sheet = sheet.loc[present]
    table = pd.DataFrame({"patient_id": pd.Series(present, dtype=object)})
    report = []
    n = len(present)
    for item in items:
        if item.column not in sheet.columns:
            continue
        raw = sheet[item.column]
        n_out = 0
        if item.type == "numeric":
            values, n_out, cell_problems = _clean_numeric(item, raw, out_of_range)
        else:
            values, cell_problems = _clean_categories(item, raw)
        if collect is None:
            _raise_first(cell_problems, item.column, clinical_path)
        else:
            collect.extend(CohortError(problem, patient=pid, path=clinical_path) for pid, problem in cell_problems)
        table[item.name] = values.to_numpy() if item.type != "categorical" else values.array
        n_missing = int(values.isna().sum())
        numeric = item.type == "numeric" and n_missing < n
        report.append({"name": item.name, "column": item.column, "type": item.type, "unit": item.unit,
                       "n_missing": n_missing, "fraction_missing": n_missing / n if n else math.nan,
                       "n_out_of_range": n_out,
                       "min": float(values.min()) if numeric else math.nan,
                       "max": float(values.max()) if numeric else math.nan})
    if collect is not None and len(collect) > n_before:
        return None
    return table, pd.DataFrame(report)


def check_clinical(clinical_path: str | Path, dictionary_path: str | Path, *,
                   cohort_ids: list[str], id_column: str = "patient_id",
                   identifier_columns: Iterable[str] = ("name",),
                   out_of_range: Literal["error", "missing"] = "error") -> list[CohortError]:
    """Every problem `clean_clinical` would raise, one error per bad cell (patient and column named, the cell
    described by kind and length only), in the order: dictionary, sheet, ids, absent patients and columns,
    then item by item. Empty when the sheet is clean."""
    problems: list[CohortError] = []
    _clean(Path(clinical_path), dictionary_path, cohort_ids=list(cohort_ids), id_column=id_column,
           identifier_columns=identifier_columns, out_of_range=out_of_range, collect=problems)
    return problems


def clean_clinical(clinical_path: str | Path, dictionary_path: str | Path, *,
                   cohort_ids: list[str], id_column: str = "patient_id",
                   identifier_columns: Iterable[str] = ("name",),
                   out_of_range: Literal["error", "missing"] = "error"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean the clinical sheet for the patients of the cohort.

    Returns `(table, report)`:

    * `table`: `patient_id` plus one column per dictionary item under its canonical `name`, rows in
      `cohort_ids` order; numeric and binary items float64 (binary 0/1, NaN = missing), categorical
      items pandas Categorical with the dictionary's categories. Sheet columns not in the dictionary
      and patients not in the cohort are left out.
    * `report`: one row per item: `name`, `column`, `type`, `unit`, `n_missing` (missing in the
      table, out-of-range values included), `fraction_missing`, `n_out_of_range`, `min`, `max`
      (observed, numeric items only).

    Raises `CohortError` naming the sheet, the patient and the problem (see the module docstring).
    """
    if out_of_range not in ("error", "missing"):
        raise ValueError(f"out_of_range must be 'error' or 'missing', got {out_of_range!r}")
    return _clean(Path(clinical_path), dictionary_path, cohort_ids=list(cohort_ids), id_column=id_column,
                  identifier_columns=identifier_columns, out_of_range=out_of_range, collect=None)


# --------------------------------------------------------------------------------------------------
# Fold-wise preprocessing


class ClinicalPreprocessor:
    """Imputation, encoding and scaling of the cleaned clinical table, fitted on a training fold.

    Per item, in dictionary order, the features are:

    * numeric: `(x - mean) / sd`, where missing x is first replaced by the training median and
      `mean`, `sd` (population SD, ddof=0; 1 when the training column is constant) are those of the
      imputed training column, so the transformed training column has mean 0 and SD 1.
    * binary: the 0/1 value, missing replaced by the training mode (ties -> 0).
    * categorical: one-hot over the dictionary's categories (features `name=category`, all
      categories kept), missing replaced by the training mode (ties -> first category).
    * `name__missing` (1 = was missing): only for items with a missing value in the training fold.

    An item with no observed training value is imputed with 0 (numeric, before scaling), 0 (binary)
    or the first category.
    """

    def __init__(self, dictionary: pd.DataFrame):
        self.items = [(it.name, it.type, it.categories) for it in dictionary_items(dictionary)]
        self.stats: dict[str, dict[str, Any]] | None = None
        self.feature_names: list[str] = []

    def _column(self, df: pd.DataFrame, name: str, kind: str, categories: Sequence[str]) -> np.ndarray:
        """The item as float codes: numeric value, 0/1, or category index; NaN = missing."""
        if name not in df.columns:
            raise KeyError(f"clinical table has no column {name!r}")
        col = df[name]
        if kind == "categorical":
            index = {c: i for i, c in enumerate(categories)}
            codes = np.full(len(col), np.nan)
            ids = df["patient_id"].tolist() if "patient_id" in df.columns else [None] * len(col)
            for i, (pid, v) in enumerate(zip(ids, col.astype(object))):
                if pd.isna(v):
                    continue
                if str(v) not in index:
                    raise CohortError(f"column {name!r}: value {v!r} is not one of the declared "
                                      f"categories {'|'.join(categories)}", patient=pid)
                codes[i] = index[str(v)]
            return codes
        values = pd.to_numeric(col.astype(object), errors="raise").to_numpy(dtype="float64",
                                                                            na_value=np.nan)
        if kind == "binary" and not np.isin(values[~np.isnan(values)], (0.0, 1.0)).all():
            raise ValueError(f"binary column {name!r} holds values other than 0/1")
        return values

    def fit(self, train_df: pd.DataFrame) -> "ClinicalPreprocessor":
        """Learn imputation values, scaling and indicators from the training fold only."""
        stats: dict[str, dict[str, Any]] = {}
        for name, kind, cats in self.items:
            x = self._column(train_df, name, kind, cats)
            observed = x[~np.isnan(x)]
            entry: dict[str, Any] = {"indicator": bool(np.isnan(x).any())}
            if kind == "numeric":
                median = float(np.median(observed)) if observed.size else 0.0
                filled = np.where(np.isnan(x), median, x)
                sd = float(filled.std()) if filled.size else 0.0
                entry.update(median=median, mean=float(filled.mean()) if filled.size else 0.0,
                             sd=sd if sd > 0 else 1.0)
            else:
                n_levels = 2 if kind == "binary" else len(cats)
                counts = np.bincount(observed.astype(int), minlength=n_levels)
                entry["mode"] = int(np.argmax(counts))  # argmax takes the first maximum on ties
            stats[name] = entry
        self.stats = stats
        self.feature_names = self._feature_names()
        return self

    def _feature_names(self) -> list[str]:
        assert self.stats is not None
        names: list[str] = []
        for name, kind, cats in self.items:
            names += [f"{name}={c}" for c in cats] if kind == "categorical" else [name]
            if self.stats[name]["indicator"]:
                names.append(name + INDICATOR_SUFFIX)
        return names

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Features of `df` (rows in `df` order): float32 array `(n, len(feature_names))`."""
        if self.stats is None:
            raise RuntimeError("ClinicalPreprocessor.transform called before fit")
        blocks: list[np.ndarray] = []
        for name, kind, cats in self.items:
            s = self.stats[name]
            x = self._column(df, name, kind, cats)
            missing = np.isnan(x)
            if kind == "numeric":
                blocks.append(((np.where(missing, s["median"], x) - s["mean"]) / s["sd"])[:, None])
            elif kind == "binary":
                blocks.append(np.where(missing, s["mode"], x)[:, None])
            else:
                codes = np.where(missing, s["mode"], x).astype(int)
                blocks.append(np.eye(len(cats))[codes])
            if s["indicator"]:
                blocks.append(missing.astype("float64")[:, None])
        if not blocks:
            return np.zeros((len(df), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def fit_transform(self, train_df: pd.DataFrame) -> np.ndarray:
        return self.fit(train_df).transform(train_df)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fitted state (items, statistics, feature names)."""
        if self.stats is None:
            raise RuntimeError("ClinicalPreprocessor.to_dict called before fit")
        return {"format": "cmdnet.ClinicalPreprocessor", "version": 1,
                "items": [{"name": n, "type": t, "categories": list(c)} for n, t, c in self.items],
                "stats": {k: dict(v) for k, v in self.stats.items()},
                "feature_names": list(self.feature_names)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClinicalPreprocessor":
        """Rebuild a fitted preprocessor from `to_dict()` output (e.g. after a JSON round trip)."""
        if d.get("format") != "cmdnet.ClinicalPreprocessor" or d.get("version") != 1:
            raise ValueError("not a version-1 cmdnet.ClinicalPreprocessor state")
        dictionary = pd.DataFrame([{"column": it["name"], "name": it["name"], "type": it["type"],
                                    "categories": "|".join(it["categories"])} for it in d["items"]],
                                  columns=["column", "name", "type", "categories"])
        self = cls(dictionary)
        self.stats = {k: dict(v) for k, v in d["stats"].items()}
        self.feature_names = self._feature_names()
        if self.feature_names != list(d["feature_names"]):
            raise ValueError("stored feature names do not match the stored items")
        return self
