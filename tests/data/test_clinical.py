"""Clinical sheet cleaning (errors, privacy, report) and the fold-wise ClinicalPreprocessor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmdnet.data.clinical import ClinicalPreprocessor, clean_clinical, load_dictionary, parse_number, check_clinical
from cmdnet.errors import CohortError

DICTIONARY = """column,name,type,unit,min,max,categories,description
Albumin (g/L),albumin,numeric,g/L,10,80,,serum albumin
AFP,afp,numeric,ng/mL,0,,,alpha-fetoprotein
HBV,hbv,binary,,,,no|yes,hepatitis B
Child-Pugh,child_pugh,categorical,,,,A|B|C,Child-Pugh class
"""
SECRET = "Jane Q. Secretname"


def _sheet_rows() -> list[dict[str, str]]:
    return [
        {"patient_id": "P1", "name": SECRET, "Albumin (g/L)": "40.5", "AFP": "<20", "HBV": "yes",
         "Child-Pugh": "A", "unused": "x"},
        {"patient_id": "P2", "name": "John Doe", "Albumin (g/L)": " 35 ", "AFP": "1200", "HBV": "No",
         "Child-Pugh": "b", "unused": "y"},
        {"patient_id": "P3", "name": "Max Mustermann", "Albumin (g/L)": "", "AFP": "NA", "HBV": "",
         "Child-Pugh": "", "unused": "z"},
        {"patient_id": "P4", "name": "Erika Musterfrau", "Albumin (g/L)": "28", "AFP": ">1000",
         "HBV": "yes", "Child-Pugh": "C", "unused": ""},
    ]


def _write(tmp_path: Path, rows: list[dict[str, str]], name: str = "clinical.csv",
           dictionary: str = DICTIONARY) -> tuple[Path, Path]:
    sheet = tmp_path / name
    df = pd.DataFrame(rows)
    df.to_excel(sheet, index=False) if sheet.suffix == ".xlsx" else df.to_csv(sheet, index=False)
    dic = tmp_path / "dictionary.csv"
    dic.write_text(dictionary)
    return sheet, dic


def _clean(tmp_path, rows, ids=("P4", "P1", "P2", "P3"), **kw):
    sheet, dic = _write(tmp_path, rows)
    return clean_clinical(sheet, dic, cohort_ids=list(ids), **kw)


def test_parse_number():
    assert parse_number(" 12.5 ") == 12.5 and parse_number("<20") == 20.0
    assert parse_number("> 1e3") == 1000.0 and parse_number("-.5") == -0.5
    for bad in ("1,234.5", "12 mg", "high", "", "<", "1.2.3", "=5", "1e999", "-1e400"):
        with pytest.raises(ValueError):
            parse_number(bad)


def test_clean_table_values_order_and_types(tmp_path):
    table, report = _clean(tmp_path, _sheet_rows())
    assert table.columns.tolist() == ["patient_id", "albumin", "afp", "hbv", "child_pugh"]
    assert table["patient_id"].tolist() == ["P4", "P1", "P2", "P3"]  # cohort order
    np.testing.assert_array_equal(table["albumin"], [28.0, 40.5, 35.0, np.nan])
    np.testing.assert_array_equal(table["afp"], [1000.0, 20.0, 1200.0, np.nan])
    np.testing.assert_array_equal(table["hbv"], [1.0, 1.0, 0.0, np.nan])
    assert table["albumin"].dtype == "float64" and table["hbv"].dtype == "float64"
    assert isinstance(table["child_pugh"].dtype, pd.CategoricalDtype)
    assert table["child_pugh"].cat.categories.tolist() == ["A", "B", "C"]
    assert table["child_pugh"].astype(object).tolist()[:3] == ["C", "A", "B"]
    assert pd.isna(table["child_pugh"].iloc[3])
    rep = report.set_index("name")
    assert rep.loc["albumin", "n_missing"] == 1 and rep.loc["albumin", "fraction_missing"] == 0.25
    assert rep.loc["albumin", "min"] == 28.0 and rep.loc["albumin", "max"] == 40.5
    assert rep.loc["afp", "unit"] == "ng/mL" and rep.loc["afp", "max"] == 1200.0
    assert rep.loc["hbv", "type"] == "binary" and np.isnan(rep.loc["hbv", "min"])
    assert (rep["n_out_of_range"] == 0).all()


def test_identifier_column_never_reaches_outputs(tmp_path):
    table, report = _clean(tmp_path, _sheet_rows())
    assert "name" not in table.columns
    text = table.to_csv() + report.to_csv()
    assert SECRET not in text and "Doe" not in text


def test_identifier_value_never_in_error(tmp_path):
    rows = _sheet_rows()
    rows[0]["AFP"] = "high"
    with pytest.raises(CohortError) as err:
        _clean(tmp_path, rows)
    assert SECRET not in str(err.value) and "Jane" not in str(err.value)


def test_a_name_shifted_into_any_column_never_reaches_an_error(tmp_path):
    rows = _sheet_rows()
    for column in ("Albumin (g/L)", "AFP", "HBV", "Child-Pugh"):
        rows[1][column] = SECRET
    problems = check_clinical(*_write(tmp_path, rows), cohort_ids=["P4", "P1", "P2", "P3"])
    assert len(problems) == 4 and {p.patient for p in problems} == {"P2"}
    text = "\n".join(map(str, problems))
    assert "Secretname" not in text and "text (18 characters)" in text


def test_check_clinical_lists_every_bad_cell_of_every_column(tmp_path):
    rows = _sheet_rows()
    rows[0]["Albumin (g/L)"] = "390"       # P1: a unit mix-up
    rows[1]["Albumin (g/L)"] = "12 g"      # P2
    rows[2]["Child-Pugh"] = "D"            # P3
    rows[3]["HBV"] = "maybe"               # P4
    problems = check_clinical(*_write(tmp_path, rows), cohort_ids=["P1", "P2", "P3", "P4", "P9"])
    lines = [str(p) for p in problems]
    assert len(lines) == 5, "\n".join(lines)
    assert "absent from the clinical sheet: P9" in lines[0]
    assert [p.patient for p in problems[1:]] == ["P1", "P2", "P4", "P3"], "dictionary order, then patients"
    assert "above the plausible range" in lines[1] and "not a number" in lines[2]
    assert check_clinical(*_write(tmp_path, _sheet_rows()), cohort_ids=["P1", "P2"]) == []


def test_xlsx_gives_the_same_result_as_csv(tmp_path):
    rows = _sheet_rows()
    a = _clean(tmp_path, rows)
    sheet, dic = _write(tmp_path, rows, "clinical.xlsx")
    b = clean_clinical(sheet, dic, cohort_ids=["P4", "P1", "P2", "P3"])
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])


def test_xlsx_numeric_cells_match_binary_categories(tmp_path):
    dictionary = "column,name,type,categories\nsmoker,smoker,binary,0|1\n"
    sheet = tmp_path / "c.xlsx"
    pd.DataFrame({"patient_id": ["A", "B"], "smoker": [1.0, 0]}).to_excel(sheet, index=False)
    (tmp_path / "d.csv").write_text(dictionary)
    table, _ = clean_clinical(sheet, tmp_path / "d.csv", cohort_ids=["A", "B"])
    assert table["smoker"].tolist() == [1.0, 0.0]


def test_cohort_ids_absent_from_clinical_sheet_are_listed(tmp_path):
    with pytest.raises(CohortError, match=r"clinical\.csv: 2 cohort patients are absent from the "
                                          r"clinical sheet: P9, P7"):
        _clean(tmp_path, _sheet_rows(), ids=["P1", "P9", "P7"])


def test_non_numeric_text_names_patient_and_column_and_describes_the_cell(tmp_path):
    rows = _sheet_rows()
    rows[1]["Albumin (g/L)"] = "1,234.5"
    rows[3]["Albumin (g/L)"] = "12 g"
    with pytest.raises(CohortError) as err:
        _clean(tmp_path, rows)
    msg = str(err.value)
    assert err.value.patient == "P4"  # first in cohort order
    assert "'Albumin (g/L)'" in msg and "text (4 characters) is not a number" in msg
    assert "12 g" not in msg, "the cell's content must not be repeated (it may be a name in the wrong column)"
    assert "1 more invalid values" in msg and "P2" in msg and "clinical.csv" in msg


def test_out_of_range_is_an_error_by_default(tmp_path):
    rows = _sheet_rows()
    rows[1]["Albumin (g/L)"] = "95"
    with pytest.raises(CohortError) as err:
        _clean(tmp_path, rows)
    msg = str(err.value)
    assert err.value.patient == "P2" and "above the plausible range [10.0, 80.0] g/L" in msg
    assert "95" not in msg, "an out-of-range number may be an identifier (an MRN in the wrong column)"
    assert "'Albumin (g/L)'" in msg


def test_out_of_range_missing_sets_missing_and_counts(tmp_path):
    rows = _sheet_rows()
    rows[1]["Albumin (g/L)"] = "95"
    rows[0]["Albumin (g/L)"] = "5"
    table, report = _clean(tmp_path, rows, out_of_range="missing")
    np.testing.assert_array_equal(table["albumin"], [28.0, np.nan, np.nan, np.nan])
    rep = report.set_index("name")
    assert rep.loc["albumin", "n_out_of_range"] == 2 and rep.loc["albumin", "n_missing"] == 3


def test_dictionary_column_absent_from_sheet(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "HBV"} for r in _sheet_rows()]
    with pytest.raises(CohortError, match=r"clinical\.csv: dictionary columns absent from the "
                                          r"clinical sheet: 'HBV'"):
        _clean(tmp_path, rows)


def test_unknown_category_value(tmp_path):
    rows = _sheet_rows()
    rows[2]["Child-Pugh"] = "D"
    with pytest.raises(CohortError, match=r"patient P3, .*clinical\.csv: column 'Child-Pugh': "
                                          r"text \(1 character\) is not one of the declared categories "
                                          r"A\|B\|C"):
        _clean(tmp_path, rows)


def test_binary_value_outside_two_categories(tmp_path):
    rows = _sheet_rows()
    rows[0]["HBV"] = "maybe"
    with pytest.raises(CohortError, match=r"patient P1, .*'HBV': text \(5 characters\) is not one of the two "
                                          r"binary categories no\|yes"):
        _clean(tmp_path, rows)


def test_missing_id_column_and_duplicates_in_clinical_sheet(tmp_path):
    rows = _sheet_rows()
    rows[3]["patient_id"] = "P1"
    with pytest.raises(CohortError, match=r"clinical\.csv: duplicate patient ids: P1 \(row 2, row 5\)"):
        _clean(tmp_path, rows)
    with pytest.raises(CohortError, match=r"no patient id column 'pid'.*'Albumin \(g/L\)'"):
        _clean(tmp_path, _sheet_rows(), id_column="pid")


@pytest.mark.parametrize("dictionary, problem", [
    ("column,name,type\nA,a,number\n", "type 'number' is not one of"),
    ("column,name,type,categories\nA,a,binary,x|y|z\n", "exactly two categories"),
    ("column,name,type,min,max\nA,a,numeric,5,1\n", "min 5.0 > max 1.0"),
    ("column,name,type\nA,Alb Umin,numeric\n", "must be snake_case"),
    ("column,name,type\nA,a,numeric\nB,a,numeric\n", "repeats name 'a'"),
    ("column,type\nA,numeric\n", "lacks columns 'name'"),
])
def test_dictionary_errors(tmp_path, dictionary, problem):
    path = tmp_path / "dictionary.csv"
    path.write_text(dictionary)
    with pytest.raises(CohortError, match="dictionary.csv") as err:
        load_dictionary(path)
    assert problem in str(err.value)


# --------------------------------------------------------------------------------------------------
# ClinicalPreprocessor


def _dictionary() -> pd.DataFrame:
    return pd.DataFrame({"column": ["a", "b", "h", "c"], "name": ["a", "b", "h", "c"],
                         "type": ["numeric", "numeric", "binary", "categorical"],
                         "categories": ["", "", "no|yes", "A|B|C|D"]})


def _frame(a, b, h, c) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [f"T{i}" for i in range(len(a))], "a": a, "b": b,
                         "h": h, "c": pd.Categorical(c, categories=["A", "B", "C", "D"])})


TRAIN = _frame([1.0, 2.0, np.nan, 4.0, 10.0], [5.0, 5.0, 6.0, 7.0, 8.0],
               [1.0, 1.0, 0.0, np.nan, 1.0], ["A", "B", "B", None, "A"])


def test_preprocessor_features_indicators_and_one_hot():
    pre = ClinicalPreprocessor(_dictionary()).fit(TRAIN)
    # b has no missing training values -> no indicator; D never seen but still a column.
    assert pre.feature_names == ["a", "a__missing", "b", "h", "h__missing",
                                 "c=A", "c=B", "c=C", "c=D", "c__missing"]
    x = pre.transform(TRAIN)
    assert x.dtype == np.float32 and x.shape == (5, 10)
    cols = {n: x[:, i] for i, n in enumerate(pre.feature_names)}
    np.testing.assert_array_equal(cols["a__missing"], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(cols["h"], [1, 1, 0, 1, 1])  # mode 1 imputed
    np.testing.assert_array_equal(cols["c__missing"], [0, 0, 0, 1, 0])
    # Categorical mode: A and B tie at 2 -> first dictionary category A.
    np.testing.assert_array_equal(x[:, 5:9], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0],
                                              [1, 0, 0, 0], [1, 0, 0, 0]])
    # a: median of observed (1, 2, 4, 10) = 3 imputed, then standardised.
    filled = np.array([1, 2, 3, 4, 10.0])
    np.testing.assert_allclose(cols["a"], (filled - filled.mean()) / filled.std(), rtol=1e-6)
    for name in ("a", "b"):
        assert abs(cols[name].mean()) < 1e-6 and abs(cols[name].std() - 1) < 1e-5


def test_preprocessor_uses_training_statistics_only():
    test = _frame([1e6, np.nan], [-1e6, 1e6], [np.nan, 0.0], ["D", None])
    pre = ClinicalPreprocessor(_dictionary()).fit(TRAIN)
    before = json.dumps(pre.to_dict(), sort_keys=True)
    x = pre.transform(test)
    assert json.dumps(pre.to_dict(), sort_keys=True) == before
    assert pre.stats["a"]["median"] == 3.0 and pre.stats["b"]["mean"] == 6.2
    cols = {n: x[:, i] for i, n in enumerate(pre.feature_names)}
    a_mean, a_sd = pre.stats["a"]["mean"], pre.stats["a"]["sd"]
    np.testing.assert_allclose(cols["a"], [(1e6 - a_mean) / a_sd, (3.0 - a_mean) / a_sd], rtol=1e-6)
    np.testing.assert_array_equal(cols["a__missing"], [0, 1])
    np.testing.assert_array_equal(x[:, 5:9], [[0, 0, 0, 1], [1, 0, 0, 0]])
    # Fitting on train + the extreme frame would give different statistics: the test frame matters.
    both = ClinicalPreprocessor(_dictionary()).fit(pd.concat([TRAIN, test], ignore_index=True))
    assert both.stats["b"]["sd"] != pre.stats["b"]["sd"]


def test_preprocessor_round_trip_through_json():
    pre = ClinicalPreprocessor(_dictionary()).fit(TRAIN)
    test = _frame([0.5, np.nan, 7.0], [np.nan, 3.0, 9.0], [0.0, np.nan, 1.0], ["C", None, "B"])
    again = ClinicalPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again.feature_names == pre.feature_names
    np.testing.assert_array_equal(again.transform(test), pre.transform(test))
    np.testing.assert_array_equal(again.transform(TRAIN), pre.transform(TRAIN))


def test_preprocessor_on_cleaned_table(tmp_path):
    table, _ = _clean(tmp_path, _sheet_rows())
    pre = ClinicalPreprocessor(load_dictionary(tmp_path / "dictionary.csv")).fit(table.iloc[:3])
    x = pre.transform(table)
    assert x.shape == (4, len(pre.feature_names)) and np.isfinite(x).all()
    assert "child_pugh=C" in pre.feature_names


def test_preprocessor_rejects_unknown_category_and_unfitted_use():
    pre = ClinicalPreprocessor(_dictionary())
    with pytest.raises(RuntimeError, match="before fit"):
        pre.transform(TRAIN)
    pre.fit(TRAIN)
    bad = TRAIN.copy()
    bad["c"] = ["A", "B", "E", None, "A"]
    with pytest.raises(CohortError, match=r"patient T2: column 'c': value 'E'"):
        pre.transform(bad)
