"""Stage 1 (DICOM -> canonical 3D NIfTI) on real scanner data and on broken copies of it.

Every refusal must name patient, phase and directory, and leave no output file behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from cmdnet.data.dicom import SIDECAR_ATTRIBUTES, convert_series, list_series, read_series, series_grid, uid_digest
from cmdnet.data.dicom.survey import format_survey, survey
from cmdnet.data.grid import grid_mismatch, grid_of
from cmdnet.errors import DicomError, InputError
from tests.conftest import REPO, shared_dicom_case

PATIENT, PHASE = "SYN007", "HBP"


def _copy(case: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted((shared_dicom_case(case) / "dicom").iterdir()):
        shutil.copy(path, dst / path.name)
    return dst


def _refused(dicom_dir: Path, out_dir: Path, match: str, **kwargs) -> DicomError:
    """Convert must refuse with `match` in a message that names patient, phase and directory,
    and write nothing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with pytest.raises(DicomError, match=match) as info:
        convert_series(dicom_dir, out_dir / "vol.nii.gz", patient=PATIENT, phase=PHASE, **kwargs)
    message = str(info.value)
    assert "\n" not in message, "the reason must be one line"
    assert f"patient {PATIENT}" in message and f"phase {PHASE}" in message, message
    assert str(dicom_dir) in message, message
    assert list(out_dir.iterdir()) == [], f"a refused input left files: {list(out_dir.iterdir())}"
    return info.value


def _corners_mm(image: sitk.Image) -> np.ndarray:
    size = image.GetSize()
    corners = [(i, j, k) for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)]
    return np.array([image.TransformIndexToPhysicalPoint(c) for c in corners])


# ------------------------------------------------------------------------------------- real 3D series

def test_siemens_decubitus_matches_dcm2niix_reference(tmp_path):
    case = shared_dicom_case("siemens_decubitus_HFDL_t1_sag")
    sidecar = convert_series(case / "dicom", tmp_path / "t1.nii.gz")
    ours = sitk.ReadImage(str(tmp_path / "t1.nii.gz"))
    ref = sitk.DICOMOrient(sitk.ReadImage(str(next((case / "ref").glob("*.nii.gz")))), "LPS")

    assert ours.GetPixelID() == sitk.sitkFloat32
    assert ours.GetSize() == ref.GetSize() == (35, 256, 256)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(ref).astype(np.float32))
    np.testing.assert_allclose(ours.GetSpacing(), ref.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(ours.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(ours.GetDirection(), ref.GetDirection(), atol=1e-5)
    np.testing.assert_allclose(_corners_mm(ours), _corners_mm(ref), atol=1e-3)
    # LPS: the direction matrix is the identity up to axis signs/permutation chosen by DICOMOrient("LPS").
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(ours.GetDirection()) == "LPS"

    assert sidecar["size"] == [35, 256, 256]
    assert sidecar["orientation"] == "LPS" and sidecar["n_files"] == 35
    uid = str(pydicom.dcmread(next((case / "dicom").iterdir()), stop_before_pixels=True).SeriesInstanceUID)
    assert sidecar["series_uid_sha256"] == hashlib.sha256(uid.encode()).hexdigest()[:16]
    assert uid not in json.dumps(sidecar), "the UID itself may embed scanner serials and times"
    assert sidecar["Modality"] == "MR" and sidecar["RepetitionTime"] > 0 and sidecar["FlipAngle"] > 0
    assert json.loads((tmp_path / "t1.json").read_text()) == sidecar


def test_ge_ct_is_in_hounsfield_units_and_liver_mask_shares_the_grid():
    case = shared_dicom_case("ge_ct_liver_3slice_with_mask")
    image = read_series(case / "dicom")
    assert image.GetSize() == (512, 512, 3)
    array = sitk.GetArrayFromImage(image)  # (z, y, x), z increasing along LPS S after DICOMOrient

    # pydicom's own rescaled pixels of the slice at the lowest z (LPS: most inferior first).
    files = sorted((case / "dicom").iterdir(),
                   key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    ds = pydicom.dcmread(files[0])
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert float(ds.RescaleIntercept) == -1024
    np.testing.assert_array_equal(array[0], expected.astype(np.float32))
    assert array.min() < -900, "air must be about -1000 HU after the intercept"

    mask = sitk.DICOMOrient(sitk.ReadImage(str(case / "ref" / "liver_seg.nrrd")), "LPS")
    assert mask.GetSize() == image.GetSize()
    np.testing.assert_allclose(mask.GetOrigin(), image.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(mask.GetSpacing(), image.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(mask.GetDirection(), image.GetDirection(), atol=1e-5)
    liver = sitk.GetArrayFromImage(mask) > 0
    assert liver.sum() > 1000
    assert 0 < np.median(array[liver]) < 150, "the mask must land on soft tissue (liver), not air or bone"


def test_per_file_rescale_of_a_classic_series_is_applied_to_each_slice(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    edited = sorted(src.iterdir())[1]
    ds = pydicom.dcmread(edited)
    ds.RescaleSlope, ds.RescaleIntercept = 2.5, -1000
    ds.save_as(edited)
    array = sitk.GetArrayFromImage(read_series(src))
    expected = ds.pixel_array * 2.5 - 1000.0
    matches = [np.array_equal(array[k], expected.astype(np.float32)) for k in range(3)]
    assert sum(matches) == 1, "the slice with its own slope/intercept must be rescaled with them"


def test_single_enhanced_multiframe_file_is_one_volume(tmp_path):
    case = shared_dicom_case("siemens_xa10_enhanced")
    src = tmp_path / "enh"
    src.mkdir()
    shutil.copy(case / "dicom" / "6_1.dcm", src)
    image = read_series(src)
    ref = sitk.ReadImage(str(next((case / "ref").glob("*.nii"))))  # 64x64x6x4, volume 0 is 6_1.dcm
    ref0 = sitk.DICOMOrient(ref[:, :, :, 0], "LPS")
    assert image.GetSize() == ref0.GetSize() == (64, 64, 6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(ref0))
    np.testing.assert_allclose(_corners_mm(image), _corners_mm(ref0), atol=1e-3)


# ------------------------------------------------------------------------------ real inputs refused

def test_every_transfer_syntax_of_a_mosaic_is_refused_as_2d(tmp_path):
    case = shared_dicom_case("siemens_transfer_syntaxes")
    for path in sorted((case / "dicom").iterdir()):
        assert sitk.ReadImage(str(path)).GetSize()[:2] == (384, 384)  # SimpleITK decodes it: a 2D mosaic
        one = tmp_path / path.stem
        one.mkdir()
        shutil.copy(path, one)
        _refused(one, tmp_path / f"out{path.stem}", "mosaic")


@pytest.mark.parametrize("case, detail", [("ge_dwi_4d", "2 distinct slice positions"),
                                          ("siemens_xa10_enhanced", "6 distinct slice positions")])
def test_four_dimensional_series_are_refused(tmp_path, case, detail):
    err = _refused(shared_dicom_case(case) / "dicom", tmp_path / "out", "more than one volume")
    assert detail in str(err)


def test_inconsistent_per_frame_rescale_is_refused(tmp_path):
    src = tmp_path / "enh"
    src.mkdir()
    ds = pydicom.dcmread(shared_dicom_case("siemens_xa10_enhanced") / "dicom" / "6_1.dcm")
    ds.PerFrameFunctionalGroupsSequence[3].PixelValueTransformationSequence[0].RescaleSlope = 2
    ds.save_as(src / "enh.dcm")
    _refused(src, tmp_path / "out", "rescale slope/intercept differ between frames")


# ------------------------------------------------------------------------------ broken copies refused

def test_missing_and_empty_directories_are_refused(tmp_path):
    _refused(tmp_path / "nowhere", tmp_path / "out1", "does not exist")
    (tmp_path / "empty").mkdir()
    _refused(tmp_path / "empty", tmp_path / "out2", "empty")


def test_a_study_folder_given_for_a_series_folder_is_called_so(tmp_path):
    study = tmp_path / "study"
    _copy("ge_ct_liver_3slice_with_mask", study / "series1")
    _copy("siemens_decubitus_HFDL_t1_sag", study / "sub" / "series2")
    err = _refused(study, tmp_path / "out", "a study or patient folder, not a series folder")
    assert "38 in 2 sub-folder(s)" in str(err) and "cmdnet series" in str(err)
    assert "is empty" not in str(err)


def test_non_dicom_file_in_the_series_is_refused(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    (src / "04.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    _refused(src, tmp_path / "out", "04.dcm is not readable DICOM")


def test_truncated_file_is_refused(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    victim = sorted(src.iterdir())[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    _refused(src, tmp_path / "out", f"{victim.name}: pixel data truncated")


def test_two_series_need_a_choice(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "two")
    second_uid = generate_uid(entropy_srcs=["cmdnet test second series"])
    for path in sorted(src.iterdir()):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = second_uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["cmdnet test", path.name])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(src / f"b_{path.name}")
    first_uid = str(pydicom.dcmread(src / "01.dcm", stop_before_pixels=True).SeriesInstanceUID)

    assert [(s.uid, s.n_files) for s in list_series(src)] == sorted([(first_uid, 3), (second_uid, 3)])
    err = _refused(src, tmp_path / "out", "2 series found and none chosen")
    assert first_uid not in str(err) and second_uid not in str(err), "UIDs reach logs only as digests"
    assert uid_digest(first_uid) in str(err) and uid_digest(second_uid) in str(err)
    assert "cmdnet series" in str(err), "the refusal must point to the command that lists the series"
    err = _refused(src, tmp_path / "out", r"the chosen series \(digest [0-9a-f]{16}\) is not in this directory",
                   series_uid="1.2.3")
    assert "1.2.3" not in str(err)

    sidecar = convert_series(src, tmp_path / "ok" / "vol.nii.gz", series_uid=second_uid)
    assert sidecar["series_uid_sha256"] == hashlib.sha256(second_uid.encode()).hexdigest()[:16]
    assert sidecar["size"] == [512, 512, 3]
    # The digest that `cmdnet series` prints chooses the series as well as the full UID.
    by_digest = convert_series(src, tmp_path / "ok2" / "vol.nii.gz", series_uid=uid_digest(second_uid).upper())
    assert by_digest == sidecar


def test_missing_middle_slice_is_refused(tmp_path):
    src = _copy("siemens_decubitus_HFDL_t1_sag", tmp_path / "t1")
    next(src.glob("0017_*.dcm")).unlink()
    _refused(src, tmp_path / "out", "1 slice.s. missing")


def test_non_uniform_spacing_is_refused(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    path = src / "03.dcm"
    ds = pydicom.dcmread(path)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x, y, z - 0.5]  # gaps 1.0 and 1.5 mm
    ds.save_as(path)
    _refused(src, tmp_path / "out", "non-uniform slice spacing")


def test_tilted_stack_is_refused(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    path = src / "03.dcm"
    ds = pydicom.dcmread(path)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x, y + 0.8, z]
    ds.save_as(path)
    _refused(src, tmp_path / "out", "not stacked along the slice normal")


def test_repeated_positions_of_a_classic_series_are_refused(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    ds = pydicom.dcmread(src / "02.dcm")
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["cmdnet test repeat"])
    ds.AcquisitionNumber = 2
    ds.save_as(src / "04.dcm")
    _refused(src, tmp_path / "out", r"more than one volume.*AcquisitionNumber")


# ----------------------------------------------------------------------------------- privacy and CLI

def test_sidecar_holds_no_identifier(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    identifiers = {"PatientName": "Doe^Jane", "PatientID": "MRN-8841207", "PatientBirthDate": "19510304",
                   "InstitutionName": "St Elsewhere Hospital", "ReferringPhysicianName": "House^Gregory",
                   "AccessionNumber": "ACC99812", "StudyDate": "20190812", "DeviceSerialNumber": "SN-44771"}
    for path in src.iterdir():
        ds = pydicom.dcmread(path)
        for keyword, value in identifiers.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    sidecar = convert_series(src, tmp_path / "out" / "vol.nii.gz")
    text = (tmp_path / "out" / "vol.json").read_text()
    for keyword, value in identifiers.items():
        assert value not in text, f"{keyword} leaked into the sidecar"
    allowed = set(SIDECAR_ATTRIBUTES) | {"series_uid_sha256", "n_files", "n_slices", "size", "spacing", "origin",
                                         "direction", "orientation", "dtype", "rescale_applied"}
    assert set(sidecar) <= allowed, set(sidecar) - allowed


def test_free_text_fields_never_reach_the_sidecar(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    planted = {"SeriesDescription": "liver Doe^Jane 1951", "ContrastBolusAgent": "Primovist for J. Doe",
               "BodyPartExamined": "DOE JANE", "ProtocolName": "Jane Doe protocol",
               "StudyDescription": "MRN 8841207"}
    for path in src.iterdir():
        ds = pydicom.dcmread(path)
        for keyword, value in planted.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    convert_series(src, tmp_path / "out" / "vol.nii.gz")
    text = (tmp_path / "out" / "vol.json").read_text()
    for word in ("Doe", "DOE", "Jane", "8841207", "Primovist"):
        assert word not in text, f"free text {word!r} leaked into the sidecar"
    assert not {"SeriesDescription", "ContrastBolusAgent", "BodyPartExamined"} & set(SIDECAR_ATTRIBUTES)


@pytest.mark.parametrize("case, files", [("siemens_decubitus_HFDL_t1_sag", None),
                                         ("ge_ct_liver_3slice_with_mask", None),
                                         ("siemens_xa10_enhanced", ["6_1.dcm"])])
def test_series_grid_from_headers_is_the_grid_convert_writes(tmp_path, case, files):
    src = _copy(case, tmp_path / "in")
    if files:
        for path in src.iterdir():
            if path.name not in files:
                path.unlink()
    converted = read_series(src)
    assert grid_mismatch(series_grid(src), grid_of(converted)) is None


def test_survey_lists_every_series_under_a_folder_with_convert_verdicts(tmp_path):
    root = tmp_path / "export"
    _copy("ge_ct_liver_3slice_with_mask", root / "p1" / "ct")
    _copy("siemens_decubitus_HFDL_t1_sag", root / "p1" / "t1")
    _copy("ge_dwi_4d", root / "p2" / "dwi")
    (root / "p2" / "notes").mkdir()
    (root / "p2" / "notes" / "readme.txt").write_text("not DICOM")
    reports = survey(root, workers=2)
    by_folder = {r.folder.relative_to(root).as_posix(): r for r in reports}
    assert sorted(by_folder) == ["p1/ct", "p1/t1", "p2/dwi", "p2/notes"]
    assert by_folder["p1/ct"].verdict == "ok" and by_folder["p1/ct"].size == (512, 512, 3)
    assert by_folder["p1/t1"].verdict == "ok" and by_folder["p1/t1"].n_files == 35
    assert "more than one volume" in by_folder["p2/dwi"].verdict
    assert by_folder["p2/notes"].uid is None and "not readable DICOM" in by_folder["p2/notes"].verdict
    lines = format_survey(reports, root)
    uid = by_folder["p1/ct"].uid
    assert any(by_folder["p1/ct"].digest in line for line in lines) and not any(uid in line for line in lines)
    assert any(uid in line for line in format_survey(reports, root, full_uids=True))


def test_cli_converts_and_refuses(tmp_path):
    case = shared_dicom_case("ge_ct_liver_3slice_with_mask")
    out = tmp_path / "ct.nii.gz"
    done = subprocess.run([sys.executable, "-m", "cmdnet", "convert", str(case / "dicom"), str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and (tmp_path / "ct.json").is_file()
    assert json.loads(done.stdout)["size"] == [512, 512, 3]

    bad = tmp_path / "bad.nii.gz"
    done = subprocess.run([sys.executable, "-m", "cmdnet", "convert",
                           str(shared_dicom_case("ge_dwi_4d") / "dicom"), str(bad)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0
    assert "more than one volume" in done.stderr and "Traceback" not in done.stderr
    assert not bad.exists() and not (tmp_path / "bad.json").exists()


def test_missing_slice_position_and_wrong_output_suffix_are_refused(tmp_path):
    src = _copy("ge_ct_liver_3slice_with_mask", tmp_path / "ct")
    ds = pydicom.dcmread(src / "02.dcm")
    del ds.ImagePositionPatient
    ds.save_as(src / "02.dcm")
    _refused(src, tmp_path / "out", "02.dcm has a missing or invalid ImagePositionPatient")

    with pytest.raises(InputError, match="must end in .nii.gz"):
        convert_series(shared_dicom_case("ge_ct_liver_3slice_with_mask") / "dicom", tmp_path / "o2" / "vol.nrrd")
    assert not (tmp_path / "o2").exists()
