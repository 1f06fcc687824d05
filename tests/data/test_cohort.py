"""Cohort sheet reading: labels, paths, and an error naming sheet/patient/problem for each bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from cmdnet.data.cohort import CohortColumns, load_cohort, patient_ids_from_sheet
from cmdnet.errors import CohortError
from cmdnet.data.sheets import read_sheet, write_parquet

PHASES = ["PRE", "HBP"]


def _rows() -> list[dict[str, str]]:
    return [
        {"patient_id": "P001", "mvi": "M0", "grade": "low", "PRE_dicom": "dicom/P001/PRE",
         "PRE_series_uid": "1.2.3", "PRE_mask": "masks/P001_PRE.nii.gz", "HBP_dicom": "dicom/P001/HBP",
         "HBP_series_uid": "", "HBP_mask": "masks/P001_HBP.nii.gz"},
        {"patient_id": "P002", "mvi": "m2", "grade": "III", "PRE_dicom": "/abs/P002/PRE",
         "PRE_series_uid": "", "PRE_mask": "masks/P002_PRE.nrrd", "HBP_dicom": "dicom/P002/HBP",
         "HBP_series_uid": "", "HBP_mask": "masks/P002_HBP.nii.gz"},
        {"patient_id": " P003 ", "mvi": "M1", "grade": "", "PRE_dicom": "dicom/P003/PRE",
         "PRE_series_uid": "", "PRE_mask": "masks/P003_PRE.nii.gz", "HBP_dicom": "dicom/P003/HBP",
         "HBP_series_uid": "", "HBP_mask": "masks/P003_HBP.nii.gz"},
    ]


def _write(tmp_path: Path, rows: list[dict[str, str]], name: str = "cohort.csv") -> Path:
    path = tmp_path / name
    df = pd.DataFrame(rows)
    if path.suffix == ".xlsx":
        df.to_excel(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def test_load_cohort_maps_labels_and_resolves_paths(tmp_path):
    sheet = _write(tmp_path, _rows())
    df = load_cohort(sheet, phases=PHASES)
    assert df["patient_id"].tolist() == ["P001", "P002", "P003"]
    assert df["mvi"].tolist() == [0, 2, 1]  # "m2" matches M2 case-insensitively
    assert df["grade"].iloc[0] == 0 and df["grade"].iloc[1] == 1 and pd.isna(df["grade"].iloc[2])
    assert str(df["mvi"].dtype) == "Int64"
    assert df.loc[0, "PRE_dicom"] == os.path.join(str(tmp_path.resolve()), "dicom", "P001", "PRE")
    assert df.loc[1, "PRE_dicom"] == "/abs/P002/PRE"
    assert df.loc[1, "PRE_mask"] == str(tmp_path.resolve() / "masks" / "P002_PRE.nrrd")
    assert df["PRE_series_uid"].tolist() == ["1.2.3", "", ""]
    assert list(df.columns) == ["patient_id", "mvi", "grade", "PRE_dicom", "PRE_series_uid",
                                "PRE_mask", "HBP_dicom", "HBP_series_uid", "HBP_mask"]


def test_xlsx_gives_the_same_cohort_as_csv(tmp_path):
    a = load_cohort(_write(tmp_path, _rows(), "cohort.csv"), phases=PHASES)
    b = load_cohort(_write(tmp_path, _rows(), "cohort.xlsx"), phases=PHASES)
    pd.testing.assert_frame_equal(a, b)


def test_edmondson_grades_and_optional_series_uid_column(tmp_path):
    rows = _rows()
    for r, g in zip(rows, ["I", "ii", "IV"]):
        r["grade"] = g
        r.pop("PRE_series_uid"), r.pop("HBP_series_uid")
    df = load_cohort(_write(tmp_path, rows), phases=PHASES, require=("mvi", "grade"))
    assert df["grade"].tolist() == [0, 0, 1]
    assert df["HBP_series_uid"].tolist() == ["", "", ""]


def test_custom_columns_and_labels(tmp_path):
    rows = [{"ID": "A", "MVI_status": "neg", "T1_img": "a", "T1_seg": "a.nii.gz"},
            {"ID": "B", "MVI_status": "POS", "T1_img": "b", "T1_seg": "b.nii.gz"}]
    cols = CohortColumns(patient_id="ID", mvi="MVI_status", dicom="{phase}_img", mask="{phase}_seg")
    df = load_cohort(_write(tmp_path, rows), phases=["T1"], columns=cols,
                     mvi_labels={"neg": 0, "pos": 1})
    assert df["mvi"].tolist() == [0, 1]
    assert df["T1_mask"].tolist() == [str(tmp_path.resolve() / "a.nii.gz"),
                                      str(tmp_path.resolve() / "b.nii.gz")]


def test_check_paths_names_missing_directory(tmp_path):
    sheet = _write(tmp_path, _rows())
    with pytest.raises(CohortError, match=r"patient P001, phase PRE, .*cohort\.csv: DICOM directory"):
        load_cohort(sheet, phases=PHASES, check_paths=True)


def test_patient_ids_from_sheet(tmp_path):
    assert patient_ids_from_sheet(_write(tmp_path, _rows())) == ["P001", "P002", "P003"]


def test_missing_patient_id_column_names_columns_found(tmp_path):
    rows = [{("ID" if k == "patient_id" else k): v for k, v in r.items()} for r in _rows()]
    sheet = _write(tmp_path, rows)
    with pytest.raises(CohortError) as err:
        patient_ids_from_sheet(sheet)
    msg = str(err.value)
    assert "cohort.csv" in msg and "'patient_id'" in msg and "'ID'" in msg and "'HBP_mask'" in msg


def test_duplicate_ids_are_listed(tmp_path):
    rows = _rows() + [dict(_rows()[1]), dict(_rows()[0])]
    with pytest.raises(CohortError, match=r"cohort\.csv: duplicate patient ids: P001 \(row 2, row 6\), "
                                          r"P002 \(row 3, row 5\)"):
        load_cohort(_write(tmp_path, rows), phases=PHASES)


def test_empty_id_names_the_row(tmp_path):
    rows = _rows()
    rows[1]["patient_id"] = "  "
    with pytest.raises(CohortError, match=r"empty patient id .* row 3"):
        patient_ids_from_sheet(_write(tmp_path, rows))


def test_label_outside_allowed_set(tmp_path):
    rows = _rows()
    rows[2]["mvi"] = "M3"
    with pytest.raises(CohortError) as err:
        load_cohort(_write(tmp_path, rows), phases=PHASES)
    msg = str(err.value)
    assert err.value.patient == "P003"
    assert "text (2 characters), not one of" in msg and "M0, M1, M2" in msg and "cohort.csv" in msg
    assert "M3" not in msg, "a label cell is described, never repeated (a column shift can put a name there)"


def test_bad_grade_label_and_required_missing_label(tmp_path):
    rows = _rows()
    rows[0]["grade"] = "V"
    with pytest.raises(CohortError, match=r"patient P001.*'grade' label is text \(1 character\).*low, high, I, "
                                          r"II, III, IV"):
        load_cohort(_write(tmp_path, rows), phases=PHASES)
    rows = _rows()
    with pytest.raises(CohortError, match=r"patient P003.*missing 'grade' label"):
        load_cohort(_write(tmp_path, rows), phases=PHASES, require=("grade",))


def test_missing_phase_columns(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "HBP_mask"} for r in _rows()]
    with pytest.raises(CohortError, match=r"cohort\.csv: missing columns 'HBP_mask'"):
        load_cohort(_write(tmp_path, rows), phases=PHASES)
    with pytest.raises(CohortError, match=r"missing columns 'AP_dicom', 'AP_mask'"):
        load_cohort(_write(tmp_path, _rows(), "c2.csv"), phases=["AP"])


def test_empty_path_names_patient_and_phase(tmp_path):
    rows = _rows()
    rows[1]["HBP_mask"] = ""
    with pytest.raises(CohortError, match=r"patient P002, phase HBP, .*empty 'HBP_mask' path"):
        load_cohort(_write(tmp_path, rows), phases=PHASES)


def test_read_sheet_keeps_text_and_rejects_unknown_suffix(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("patient_id,x\n007,<20\n008,\n\n")
    df = read_sheet(path)
    assert df["patient_id"].tolist() == ["007", "008"]  # not coerced to 7, blank line dropped
    assert df["x"].iloc[0] == "<20" and pd.isna(df["x"].iloc[1])
    with pytest.raises(CohortError, match=r"unsupported sheet format '\.json'"):
        read_sheet(tmp_path / "s.json")
    with pytest.raises(CohortError, match=r"absent\.csv: sheet file does not exist"):
        read_sheet(tmp_path / "absent.csv")
    bad = tmp_path / "bad.xlsx"
    bad.write_text("not a workbook")
    with pytest.raises(CohortError, match=r"bad\.xlsx: cannot read sheet"):
        read_sheet(bad)
    (tmp_path / "dup.csv").write_text("patient_id,a,a\nP1,1,2\n")
    with pytest.raises(CohortError, match=r"repeated column names: 'a'"):
        read_sheet(tmp_path / "dup.csv")


def test_write_parquet_round_trip_leaves_no_temporary(tmp_path):
    df = pd.DataFrame({"patient_id": ["A", "B"], "fold": [0, 1]})
    target = tmp_path / "sub" / "folds.parquet"
    write_parquet(df, target)
    pd.testing.assert_frame_equal(pd.read_parquet(target), df)
    assert [p.name for p in target.parent.iterdir()] == ["folds.parquet"]


def test_ids_that_cannot_be_file_names_are_refused(tmp_path):
    rows = _rows()
    rows[0]["patient_id"] = "../P001"
    rows[1]["patient_id"] = "P 002"
    with pytest.raises(CohortError, match=r"patient ids at row 2, row 3 cannot be used as file") as err:
        load_cohort(_write(tmp_path, rows), phases=PHASES)
    assert "P 002" not in str(err.value), "an id that is no file name may be a name: name it by row only"
