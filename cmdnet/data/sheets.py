"""Reading spreadsheets as text and writing Parquet tables atomically.

Sheets are read with every cell as a string so that nothing is coerced behind the user's back
(`"007"` stays `"007"`, `"<20"` is not turned into NaN); the modules that know what a column means
(`cmdnet.data.cohort`, `cmdnet.data.clinical`) parse and validate it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cmdnet.atomic import atomic_path
from cmdnet.errors import CohortError

SHEET_SUFFIXES = (".csv", ".tsv", ".xlsx", ".xls")


def read_sheet(path: str | Path) -> pd.DataFrame:
    """Read a CSV/TSV/XLSX/XLS sheet (chosen by suffix) with every column as text.

    Header names and cell values are stripped of surrounding white space; empty cells become missing
    (`pd.isna` is true). Only the first worksheet of a workbook is read. A UTF-8 byte-order mark (as
    written by Excel's "CSV UTF-8") is ignored.

    Raises `CohortError` naming the file for an unsupported suffix, a missing or unreadable file,
    a sheet without columns, or repeated column names.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SHEET_SUFFIXES:
        raise CohortError(f"unsupported sheet format {path.suffix or '(no suffix)'!r}; "
                          f"expected one of {', '.join(SHEET_SUFFIXES)}", path=path)
    if not path.is_file():
        raise CohortError("sheet file does not exist", path=path)
    try:
        if suffix in (".csv", ".tsv"):
            # header=None: read the header as a row so that repeated names are seen, not renamed "x.1".
            raw = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                              keep_default_na=False, header=None, encoding="utf-8-sig")
        else:
            raw = pd.read_excel(path, dtype=str, keep_default_na=False, header=None, sheet_name=0)
    except pd.errors.EmptyDataError:
        raise CohortError("sheet is empty (no header row)", path=path) from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise CohortError(f"cannot read sheet ({type(err).__name__}: {err})", path=path) from None
    if raw.shape[0] == 0:
        raise CohortError("sheet is empty (no header row)", path=path)
    header = [str(h).strip() for h in raw.iloc[0]]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise CohortError(f"repeated column names: {', '.join(map(repr, repeated))}", path=path)
    df = raw.iloc[1:].reset_index(drop=True)
    df.columns = header
    df = df.apply(lambda col: col.str.strip())
    # Drop rows that are entirely empty (trailing blank lines in Excel exports).
    df = df.mask(df == "")
    df = df.dropna(how="all").reset_index(drop=True)
    return df


def describe_cell(value: object) -> str:
    """What a sheet cell holds, without its content (for error messages: a cell may hold a name that slipped
    into the wrong column): `'a number (5 characters)'`, `'text (11 characters)'` or `'an empty cell'`."""
    if value is None or (isinstance(value, float) and value != value):
        return "an empty cell"
    text = str(value).strip()
    if not text:
        return "an empty cell"
    try:
        float(text)
        kind = "a number"
    except ValueError:
        kind = "text"
    return f"{kind} ({len(text)} character{'s' if len(text) != 1 else ''})"


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write `df` (without its index) to Parquet through a temporary file renamed onto `path`."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write `df` (without its index) as CSV through a temporary file renamed onto `path`."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
