"""The whole-cohort check (`cmdnet validate`, `cmdnet.data.validate`) on a small cohort of real scanner series.

Every patient's PRE and HBP folders hold the GE CT series of ../shared/dicom (3 slices, 512 x 512), with a
box mask drawn on its grid. Each test plants defects in some patients and expects exactly those, one line
each, in one run, without any identifier from the planted cells or DICOM headers in the output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
import yaml
from pydicom.uid import generate_uid

from cmdnet.data.cohort import cohort_fingerprint, cohort_sources, labels_from_sources
from cmdnet.data.dicom import read_series, uid_digest
from cmdnet.errors import CohortInvalid
from cmdnet.config import read_config
from cmdnet.data.validate import CheckSummary, check_cohort_once, require_valid_cohort, validate_cohort
from tests.conftest import REPO, shared_dicom_case

PHASES = ["PRE", "HBP"]
SECRET = "Jane Q. Secretname"
DICTIONARY = """column,name,type,unit,min,max,categories,description
Albumin (g/L),albumin,numeric,g/L,20,60,,serum albumin
AFP,afp,numeric,ng/mL,0,,,alpha-fetoprotein
HBV,hbv,binary,,,,no|yes,hepatitis B
"""


def _series(dst: Path) -> Path:
    """A copy of the GE CT series (files linked, not copied: the tests that edit files copy them first)."""
    dst.mkdir(parents=True)
    for path in sorted((shared_dicom_case("ge_ct_liver_3slice_with_mask") / "dicom").iterdir()):
        os.symlink(path, dst / path.name)
    return dst


def _box_mask(grid_image: sitk.Image, path: Path, boxes=((200, 300, 200, 300, 0, 3),), value=1, dtype=np.uint8):
    arr = np.zeros(grid_image.GetSize()[::-1], dtype)
    for x0, x1, y0, y1, z0, z1 in boxes:
        arr[z0:z1, y0:y1, x0:x1] = value
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(grid_image)
    sitk.WriteImage(mask, str(path))
    return path


def _build(root: Path, n: int = 4) -> dict:
    """A clean cohort of `n` patients; returns the config and handles to its parts."""
    ct = read_series(_series(root / "reference"))
    rows, clinical = [], []
    for i in range(1, n + 1):
        pid = f"P{i:02d}"
        row = {"patient_id": pid, "mvi": ["M0", "M1", "M2"][i % 3], "grade": "low", "note": ""}
        for phase in PHASES:
            _series(root / "dicom" / pid / phase)
            (root / "masks").mkdir(exist_ok=True)
            _box_mask(ct, root / "masks" / f"{pid}_{phase}.nii.gz")
            row.update({f"{phase}_dicom": f"dicom/{pid}/{phase}", f"{phase}_series_uid": "",
                        f"{phase}_mask": f"masks/{pid}_{phase}.nii.gz"})
        rows.append(row)
        clinical.append({"patient_id": pid, "name": f"Person {i}", "Albumin (g/L)": "40", "AFP": "<20",
                         "HBV": "yes"})
    pd.DataFrame(rows).to_csv(root / "cohort.csv", index=False)
    pd.DataFrame(clinical).to_csv(root / "clinical.csv", index=False)
    (root / "dictionary.csv").write_text(DICTIONARY)
    user = {"cohort": {"sheet": "cohort.csv", "clinical_sheet": "clinical.csv",
                       "clinical_dictionary": "dictionary.csv"},
            "mvi": {"phases": PHASES}, "grade": {"phase": "HBP"}}
    (root / "config.yaml").write_text(yaml.safe_dump(user))
    return {"root": root, "ct": ct, "config": read_config(root / "config.yaml")}


def _edit(root: Path, name: str, patient: str, column: str, value: str) -> None:
    df = pd.read_csv(root / name, dtype=str, keep_default_na=False)
    df.loc[df["patient_id"] == patient, column] = value
    df.to_csv(root / name, index=False)


def _check(case: dict, **kw) -> tuple[list, CheckSummary]:
    summary = CheckSummary()
    found = validate_cohort(case["config"], base_dir=case["root"], workers=1, summary=summary, **kw)
    return found, summary


@pytest.fixture()
def case(tmp_path) -> dict:
    return _build(tmp_path / "cohort")


def test_a_clean_cohort_passes_with_every_part_counted(case):
    found, summary = _check(case)
    assert found == [], "\n".join(map(str, found))
    assert (summary.n_patients, summary.n_series, summary.n_masks, summary.n_clinical_items) == (4, 8, 8, 3)
    assert summary.line().startswith("cohort OK, 0 warnings; checked 4 patients, 8 series")


def test_problems_in_three_patients_are_all_named_in_one_run(case):
    """The issue's example: a missing series directory, an empty mask, an albumin of 390 g/L."""
    root = case["root"]
    shutil.rmtree(root / "dicom" / "P02" / "PRE")
    _box_mask(case["ct"], root / "masks" / "P03_HBP.nii.gz", boxes=())
    _edit(root, "clinical.csv", "P04", "Albumin (g/L)", "390")
    found, summary = _check(case)
    lines = [str(p) for p in found]
    assert len(lines) == 3, "\n".join(lines)
    assert lines[0].startswith("patient P02, phase PRE, ") and "DICOM directory does not exist" in lines[0]
    assert lines[1].startswith("patient P03, phase HBP, ") and "no tumour voxels" in lines[1]
    assert lines[2].startswith("patient P04, ") and "above the plausible range [20.0, 60.0] g/L" in lines[2]
    assert "390" not in lines[2]
    assert summary.n_problems == 3 and summary.patients_with_problems == 3
    assert summary.line().startswith("cohort NOT OK: 3 problems (3 patients)")


def test_every_kind_of_planted_defect_is_reported_once_and_no_identifier_is_echoed(tmp_path):
    case = _build(tmp_path / "cohort", n=10)
    root, ct = case["root"], case["ct"]
    _edit(root, "clinical.csv", "P01", "AFP", SECRET)                          # a name shifted into a column
    _edit(root, "cohort.csv", "P02", "mvi", SECRET)                            # ... into the label column
    liver_tumour = np.ones(ct.GetSize()[::-1], np.uint8)                       # nnU-Net style liver 1, tumour 2
    liver_tumour[:, 200:300, 200:300] = 2
    image = sitk.GetImageFromArray(liver_tumour)
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(root / "masks" / "P03_PRE.nii.gz"))
    _box_mask(ct, root / "masks" / "P04_HBP.nrrd", value=0.7, dtype=np.float32)  # a soft mask
    _edit(root, "cohort.csv", "P04", "HBP_mask", "masks/P04_HBP.nrrd")
    _box_mask(ct, root / "masks" / "P05_PRE.nii.gz", boxes=((100, 150, 100, 150, 0, 3), (300, 320, 300, 320, 0, 2)))
    shutil.rmtree(root / "dicom" / "P06" / "HBP")                               # a study folder instead
    _series(root / "dicom" / "P06" / "HBP" / "series_a")
    two = root / "dicom" / "P07" / "PRE"                                        # two series, none chosen
    shutil.rmtree(two)
    two.mkdir()
    uids = []
    for path in sorted((shared_dicom_case("ge_ct_liver_3slice_with_mask") / "dicom").iterdir()):
        for k in range(2):
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID = generate_uid(entropy_srcs=["validate test", str(k)])
            ds.SOPInstanceUID = generate_uid(entropy_srcs=["validate test", str(k), path.name])
            ds.SeriesDescription = f"{SECRET} series {k}"
            ds.save_as(two / f"{k}_{path.name}")
            uids.append(str(ds.SeriesInstanceUID))
    off = sitk.Image(ct)                                                        # a mask off the series' grid
    off.SetOrigin(tuple(np.add(ct.GetOrigin(), (0.0, 5.0, 0.0))))
    _box_mask(off, root / "masks" / "P08_HBP.nii.gz")
    _edit(root, "cohort.csv", "P09", "HBP_mask", "")                            # an empty path cell
    (root / "masks" / "P10_PRE.nii.gz").unlink()                               # a missing mask file

    found, summary = _check(case)
    text = "\n".join(map(str, found))
    expected = [("P01", None, "column 'AFP': text (18 characters) is not a number"),
                ("P02", None, "'mvi' label is text (18 characters), not one of the allowed values"),
                ("P03", "PRE", "several labels [1, 2]; set cohort.mask_label"),
                ("P04", "HBP", "fractional values"),
                ("P05", "PRE", "warning: patient P05, phase PRE"),
                ("P06", "HBP", "a study or patient folder, not a series folder"),
                ("P07", "PRE", "2 series found and none chosen"),
                ("P08", "HBP", "not on the image grid: origin"),
                ("P09", "HBP", "empty 'HBP_mask' path"),
                ("P10", "PRE", "tumour mask file does not exist")]
    assert len(found) == len(expected), text
    for problem, (patient, phase, words) in zip(found, expected):
        assert (problem.patient, problem.phase) == (patient, phase) and words in str(problem), \
            f"expected {patient} {phase} {words!r}, got: {problem}"
    assert found[4].warning and "2 separate lesions of 7500, 800 voxels" in str(found[4])
    assert summary.n_problems == 9 and summary.n_warnings == 1
    assert "Secretname" not in text and "Person" not in text, "an identifier reached the report"
    assert not any(uid in text for uid in uids) and uid_digest(uids[0]) in text


def test_mask_label_picks_the_tumour_of_multi_label_masks_per_phase(case):
    root, ct = case["root"], case["ct"]
    arr = np.zeros(ct.GetSize()[::-1], np.uint8)
    arr[:, 100:400, 100:400] = 1                                        # liver
    arr[:, 200:300, 200:300] = 2                                        # tumour
    image = sitk.GetImageFromArray(arr)
    image.CopyInformation(ct)
    for pid in ("P01", "P02", "P03", "P04"):
        sitk.WriteImage(image, str(root / "masks" / f"{pid}_HBP.nii.gz"))
    found, _ = _check(case)
    assert [(p.patient, p.phase) for p in found] == [(pid, "HBP") for pid in ("P01", "P02", "P03", "P04")]
    assert all("several labels [1, 2]; set cohort.mask_label" in str(p) for p in found)
    case["config"]["cohort"]["mask_label"] = {"HBP": 2}                 # PRE masks keep "every non-zero voxel"
    found, _ = _check(case)
    assert found == [], "\n".join(map(str, found))
    case["config"]["cohort"]["mask_label"] = 2                          # one label for all phases: PRE lacks it
    found, _ = _check(case)
    assert [p.phase for p in found] == ["PRE"] * 4
    assert "tumour label 2 (cohort.mask_label) is absent from the mask; labels present: [1]" in str(found[0])


def test_the_workflow_entry_raises_one_error_listing_every_problem(case):
    root = case["root"]
    shutil.rmtree(root / "dicom" / "P02" / "PRE")
    _edit(root, "cohort.csv", "P03", "mvi", "M7")
    with pytest.raises(CohortInvalid) as err:
        require_valid_cohort(case["config"], base_dir=root, workers=1)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("2 problems in the cohort (cohort NOT OK: 2 problems (2 patients)")
    assert "patient P02, phase PRE" in lines[1] and "patient P03" in lines[2]
    assert len(err.value.problems) == 2


def test_cli_validate_lists_problems_and_exits_1_and_0_when_clean(case):
    root = case["root"]
    command = [sys.executable, "-m", "cmdnet", "validate", "--configfile", str(root / "config.yaml"),
               "--directory", str(root), "--workers", "2"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("cohort OK") and time.monotonic() - started < 60
    _box_mask(case["ct"], root / "masks" / "P03_HBP.nii.gz", boxes=())
    _edit(root, "clinical.csv", "P04", "HBV", SECRET)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[-1].startswith("cohort NOT OK: 2 problems"), done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_a_config_typo_is_named_before_anything_is_read(case):
    case["config"]["roi"]["margn_mm"] = 5
    found, _ = _check(case)
    assert len(found) == 1 and "config roi: " in str(found[0]) and "'margn_mm'" in str(found[0])


def test_synthetic_config_has_nothing_to_check():
    summary = CheckSummary()
    assert validate_cohort(read_config(), summary=summary) == [] and summary.synthetic
    assert "synthetic" in summary.line()


# ---------------------------------------------------------------------------- what the workflow reads


def test_cohort_sources_give_each_patient_its_own_files_and_leave_labels_unparsed(case):
    root = case["root"]
    _edit(root, "cohort.csv", "P02", "mvi", "M9")              # a labels problem is not the DAG's business
    sources = cohort_sources(root / "cohort.csv", case["config"]["cohort"], PHASES)
    assert list(sources) == ["P01", "P02", "P03", "P04"]
    p1 = sources["P01"]
    assert p1.dicom_files(PHASES) == [str(root / "dicom" / "P01" / ph / f"0{k}.dcm")
                                      for ph in PHASES for k in (1, 2, 3)]
    assert p1.mask_files(PHASES) == [str(root / "masks" / f"P01_{ph}.nii.gz") for ph in PHASES]
    assert p1.series(["HBP"]) == {"HBP": {"dicom": str(root / "dicom" / "P01" / "HBP"), "series_uid": "",
                                          "mask": str(root / "masks" / "P01_HBP.nii.gz")}}
    assert p1.dicom_dirs(PHASES) == [str(root / "dicom" / "P01" / ph) for ph in PHASES]
    assert sources["P02"].labels == {"mvi": "M9", "grade": "low"}
    with pytest.raises(CohortInvalid, match=r"patient P02: 'mvi' label is text \(2 characters\)"):
        labels_from_sources({pid: s.labels for pid, s in sources.items()}, case["config"]["cohort"])
    labels = labels_from_sources({pid: s.labels for pid, s in sources.items() if pid != "P02"},
                                 case["config"]["cohort"])
    assert labels["mvi"].tolist() == [1, 0, 1] and labels["grade"].tolist() == [0, 0, 0]


def test_fingerprints_change_with_one_patients_mask_and_nothing_else(case):
    root = case["root"]
    sources = cohort_sources(root / "cohort.csv", case["config"]["cohort"], PHASES)
    before = {pid: s.fingerprint(PHASES) for pid, s in sources.items()}
    whole = cohort_fingerprint(sources, PHASES)
    mask = root / "masks" / "P03_HBP.nii.gz"
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))  # rewritten in place
    after = {pid: s.fingerprint(PHASES) for pid, s in sources.items()}
    assert [pid for pid in before if before[pid] != after[pid]] == ["P03"]
    assert cohort_fingerprint(sources, PHASES) != whole
    dicom_only = sources["P03"].fingerprint(PHASES, masks=False)
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))
    assert sources["P03"].fingerprint(PHASES, masks=False) == dicom_only, "a mask must not rerun conversion"


def test_cohort_sources_refuse_ids_that_cannot_name_jobs_all_at_once(case):
    root = case["root"]
    _edit(root, "cohort.csv", "P02", "patient_id", "P 02")
    _edit(root, "cohort.csv", "P03", "patient_id", "P01")
    with pytest.raises(CohortInvalid) as err:
        cohort_sources(root / "cohort.csv", case["config"]["cohort"], PHASES)
    assert len(err.value.problems) == 2
    assert "row 3 cannot be used as file names" in str(err.value) and "P01 (row 2, row 4)" in str(err.value)


def test_summary_record_is_json_and_holds_no_path_or_id(case):
    summary = require_valid_cohort(case["config"], base_dir=case["root"], workers=1)
    text = json.dumps(summary.__dict__)
    assert "P01" not in text and str(case["root"]) not in text


def test_check_once_checks_again_only_when_a_file_or_setting_changed(case):
    root, record = case["root"], "results/cohort/cohort_check.json"
    first = check_cohort_once(case["config"], record, base_dir=root, workers=1)
    assert first is not None and first.n_problems == 0 and (root / record).is_file()
    assert check_cohort_once(case["config"], record, base_dir=root, workers=1) is None, "unchanged: not checked again"
    _box_mask(case["ct"], root / "masks" / "P02_PRE.nii.gz", boxes=())
    with pytest.raises(CohortInvalid, match="patient P02, phase PRE, .*no tumour voxels"):
        check_cohort_once(case["config"], record, base_dir=root, workers=1)
    _box_mask(case["ct"], root / "masks" / "P02_PRE.nii.gz")
    assert check_cohort_once(case["config"], record, base_dir=root, workers=1) is not None
    case["config"]["cohort"]["mask_components"] = "error"
    assert check_cohort_once(case["config"], record, base_dir=root, workers=1) is not None, "a setting changed"
