"""The synthetic cohort: files and sheets as docs/architecture.md says, DICOM that SimpleITK reads back to
the intended grid (flipped, rotated, oblique, reversed and shuffled series included), masks on that grid,
fake identifiers in the headers, exact MVI counts, determinism, and label signal in clinical items and images.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from cmdnet.config import ConfigError
from cmdnet.errors import InputError
from cmdnet.data.synth import PHASES, SynthParams, exact_counts, patient_ids, plan_cohort, render_phase, write_cohort
from cmdnet.data.synth.clinical import ITEMS
from cmdnet.data.synth.phantom import tumour_geometry

N = 6
PARAMS = SynthParams(n_patients=N, seed=3)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    sheet = write_cohort(out, PARAMS)
    assert sheet == out / "cohort.csv"
    return out


@pytest.fixture(scope="module")
def plans():
    return plan_cohort(PARAMS)


def read_series(directory: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(directory))
    assert len(series) == 1, f"{directory} should hold exactly one series, found {len(series)}"
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(directory), series[0]))
    return reader.Execute()


def test_patient_ids_and_exact_class_counts():
    assert patient_ids(3) == ["SYN001", "SYN002", "SYN003"]
    assert exact_counts((128, 93, 49), 270) == [128, 93, 49]
    # 80 x (128, 93, 49) / 270 = (37.93, 27.56, 14.52): floors 37, 27, 14, two units to the largest remainders
    assert exact_counts((128, 93, 49), 80) == [38, 28, 14]
    assert exact_counts((128, 93, 49), 6) == [3, 2, 1]
    counts = pd.Series([p.mvi for p in plan_cohort(SynthParams(n_patients=80))]).value_counts().sort_index()
    assert counts.tolist() == [38, 28, 14]


def test_from_dict_rejects_unknown_key_and_bad_values():
    assert SynthParams.from_dict({"n_patients": 5, "pixel_spacing_mm": [2.5, 3.0]}).pixel_spacing_mm == (2.5, 3.0)
    with pytest.raises(ConfigError, match="config synthetic: unknown key.*n_patiens"):
        SynthParams.from_dict({"n_patiens": 5})
    with pytest.raises(InputError, match="missing_rate"):
        SynthParams(missing_rate=1.5)


def test_layout_and_sheets_follow_the_contract(cohort: Path):
    sheet = pd.read_csv(cohort / "cohort.csv", dtype=str, keep_default_na=False)
    expected = ["patient_id", "mvi", "grade"] + [f"{p}_{k}" for p in ("PRE", "HBP", "AP")
                                                 for k in ("dicom", "series_uid", "mask")]
    assert list(sheet.columns) == expected
    assert sheet["patient_id"].tolist() == patient_ids(N)
    assert sorted(sheet["mvi"].value_counts().tolist()) == [1, 2, 3]
    assert set(sheet["grade"]) <= {"low", "high", "I", "II", "III", "IV"}
    for _, row in sheet.iterrows():
        for phase in PHASES:
            assert row[f"{phase}_dicom"] == f"dicom/{row.patient_id}/{phase}"
            assert (cohort / row[f"{phase}_dicom"] / "IM_0001.dcm").is_file()
            assert row[f"{phase}_mask"] == f"masks/{row.patient_id}_{phase}.nii.gz"
            assert (cohort / row[f"{phase}_mask"]).is_file()

    dictionary = pd.read_csv(cohort / "clinical_dictionary.csv", dtype=str, keep_default_na=False)
    assert list(dictionary.columns) == ["column", "name", "type", "unit", "min", "max", "categories",
                                        "description"]
    assert len(dictionary) == 52
    assert set(dictionary["type"]) == {"numeric", "binary", "categorical"}
    clinical = pd.read_csv(cohort / "clinical.csv", dtype=str, keep_default_na=False)
    assert list(clinical.columns) == ["patient_id", "name", *dictionary["column"]]
    assert clinical["patient_id"].tolist() == patient_ids(N)
    for item in dictionary.itertuples():
        values = clinical[item.column][clinical[item.column] != ""]
        if item.type == "numeric":
            numbers = values.astype(float)
            assert numbers.between(float(item.min), float(item.max)).all(), item.column
        else:
            assert set(values) <= set(item.categories.split("|")), item.column
            if item.type == "binary":
                assert len(item.categories.split("|")) == 2


def test_every_series_reads_back_on_the_intended_grid_with_its_mask(cohort: Path, plans):
    kinds = {p.orientation for p in plans} | {p.slice_order for p in plans}
    assert {"row_flipped", "rotated", "oblique", "descending", "shuffled"} <= kinds, kinds
    for plan in plans:
        for phase in PHASES:
            grid = plan.grids[phase]
            image = read_series(cohort / "dicom" / plan.patient_id / phase)
            where = f"{plan.patient_id} {phase} ({plan.orientation}, {plan.slice_order})"
            assert image.GetSize() == grid.size, where
            np.testing.assert_allclose(image.GetSpacing(), grid.spacing, atol=1e-4, err_msg=where)
            np.testing.assert_allclose(image.GetOrigin(), grid.origin, atol=1e-3, err_msg=where)
            np.testing.assert_allclose(image.GetDirection(), grid.direction, atol=1e-6, err_msg=where)
            # the voxels are where they should be: SimpleITK's volume equals the rendered one up to quantisation
            intended, mask_array = render_phase(PARAMS, plan, phase)
            read = sitk.GetArrayFromImage(image)
            assert np.abs(read - intended).max() <= 1.01, where  # slope <= 2: rounding error <= 1

            mask = sitk.ReadImage(str(cohort / "masks" / f"{plan.patient_id}_{phase}.nii.gz"))
            assert mask.GetSize() == image.GetSize(), where
            np.testing.assert_allclose(mask.GetOrigin(), image.GetOrigin(), atol=1e-3, err_msg=where)
            np.testing.assert_allclose(mask.GetSpacing(), image.GetSpacing(), atol=1e-4, err_msg=where)
            np.testing.assert_allclose(mask.GetDirection(), image.GetDirection(), atol=1e-5, err_msg=where)
            assert np.array_equal(sitk.GetArrayFromImage(mask), mask_array), where


def test_a_row_flipped_series_runs_head_to_foot(plans):
    plan = next(p for p in plans if p.orientation == "row_flipped")
    np.testing.assert_allclose(plan.grids["PRE"].direction, (-1, 0, 0, 0, 1, 0, 0, 0, -1))


def test_slice_order_in_instance_numbers_and_file_names(cohort: Path, plans):
    for plan in plans:
        folder = cohort / "dicom" / plan.patient_id / "HBP"
        files = sorted(folder.glob("*.dcm"))
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        normal = np.cross(*np.reshape(np.asarray(headers[0].ImageOrientationPatient, float), (2, 3)))
        along = [float(np.dot(np.asarray(h.ImagePositionPatient, float), normal)) for h in headers]
        by_z = np.argsort(along)
        instances = [int(headers[i].InstanceNumber) for i in by_z]
        if plan.slice_order == "descending":
            assert instances == sorted(instances, reverse=True), plan.patient_id
        else:
            assert instances == sorted(instances), plan.patient_id
        names_in_z_order = list(by_z) == list(range(len(files))) or list(by_z) == list(range(len(files)))[::-1]
        assert names_in_z_order == (plan.slice_order != "shuffled"), plan.patient_id


def test_headers_are_proper_mr_files_with_fake_identifiers(cohort: Path, plans):
    plan = plans[0]
    for phase in PHASES:
        ds = pydicom.dcmread(cohort / "dicom" / plan.patient_id / phase / "IM_0002.dcm")
        assert ds.file_meta.MediaStorageSOPClassUID == pydicom.uid.MRImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.Modality == "MR" and phase in ds.SeriesDescription
        assert ds.BitsAllocated == 16 and ds.pixel_array.shape == (ds.Rows, ds.Columns)
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == plan.grids[phase].spacing[2]
        assert str(ds.PatientName) == plan.identity.dicom_name
        assert ds.PatientID == plan.identity.mrn != plan.patient_id
        assert plan.patient_id not in str(ds.PatientName) and plan.patient_id not in ds.PatientID
        for keyword in ("PatientBirthDate", "InstitutionName", "AccessionNumber", "ReferringPhysicianName"):
            assert str(ds.get(keyword, "")).strip(), f"{keyword} should hold a fake identifier"
    # the phases share study and frame of reference but not the series
    uids = [pydicom.dcmread(cohort / "dicom" / plan.patient_id / ph / "IM_0001.dcm", stop_before_pixels=True)
            for ph in PHASES]
    assert len({u.StudyInstanceUID for u in uids}) == 1 and len({u.FrameOfReferenceUID for u in uids}) == 1
    assert len({u.SeriesInstanceUID for u in uids}) == 3
    clinical = pd.read_csv(cohort / "clinical.csv")
    assert clinical.loc[0, "name"] == plan.identity.full_name


def test_tumour_is_at_the_same_physical_place_in_every_phase(cohort: Path):
    for pid in patient_ids(N):
        centroids = []
        for phase in PHASES:
            mask = sitk.ReadImage(str(cohort / "masks" / f"{pid}_{phase}.nii.gz"))
            index = np.argwhere(sitk.GetArrayFromImage(mask) > 0)[:, ::-1].mean(axis=0)  # (x, y, z)
            centroids.append(mask.TransformContinuousIndexToPhysicalPoint(index.tolist()))
        spread = np.ptp(np.asarray(centroids), axis=0).max()
        assert spread < 3.0, f"{pid}: tumour centroid moves {spread:.1f} mm between phases"


def test_same_parameters_give_identical_files(tmp_path: Path):
    params = SynthParams(n_patients=2, seed=11)
    first, second = write_cohort(tmp_path / "a", params).parent, write_cohort(tmp_path / "b", params).parent
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(first, second, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors, f"differ between two writes: {mismatch + errors}"
    assert plan_cohort(SynthParams(n_patients=2, seed=12))[0].clinical != plan_cohort(params)[0].clinical


def test_refuses_a_non_empty_output_directory_and_leaves_nothing_behind(tmp_path: Path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="non-empty"):
        write_cohort(out, SynthParams(n_patients=1))
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_cohort(empty, SynthParams(n_patients=1))  # an existing empty directory is fine
    assert (empty / "clinical.csv").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]


def test_clinical_items_carry_mvi_signal_and_missing_values():
    plans = plan_cohort(SynthParams(n_patients=300, seed=0))   # enough patients that class medians are stable
    frame = pd.DataFrame([{**p.clinical, "mvi": p.mvi} for p in plans])
    log_afp = np.log(frame["afp"]).groupby(frame["mvi"]).mean()
    assert log_afp[2] - log_afp[0] > 1.0, log_afp
    assert frame["pivka_ii"].groupby(frame["mvi"]).median().is_monotonic_increasing
    # with no clinical signal the shift disappears (within sampling noise)
    flat = plan_cohort(SynthParams(n_patients=300, seed=0, clinical_signal=0.0))
    frame0 = pd.DataFrame([{**p.clinical, "mvi": p.mvi} for p in flat])
    log_afp0 = np.log(frame0["afp"]).groupby(frame0["mvi"]).mean()
    assert abs(log_afp0[2] - log_afp0[0]) < 0.8, log_afp0

    from cmdnet.data.synth.clinical import clinical_sheet
    sheet = clinical_sheet([p.clinical for p in plans], patient_ids(300), ["x"] * 300, 0.08, np.random.default_rng(0))
    items = sheet[[i.column for i in ITEMS]]
    assert 0.05 < items.isna().to_numpy().mean() < 0.11
    assert sheet["patient_id"].notna().all() and sheet["name"].notna().all()


def _hbp_rim_contrast(params: SynthParams, plan) -> float:
    """Median HBP signal 0-4 mm outside the tumour over that 10-20 mm outside: < 1 = dark peritumoral rim."""
    image, _ = render_phase(params, plan, "HBP")
    points = plan.grids["HBP"].physical_points().reshape(-1, 3)
    signed = tumour_geometry(plan.anatomy.tumour, points)[0].reshape(image.shape)
    near = (signed < 0) & (signed > -4)
    far = (signed < -10) & (signed > -20)
    return float(np.median(image[near]) / np.median(image[far]))


def test_images_carry_moderate_mvi_signal():
    params = SynthParams(n_patients=40, seed=1, image_signal=1.5)
    plans = [p for p in plan_cohort(params) if p.mvi in (0, 2)]
    contrast = pd.Series([_hbp_rim_contrast(params, p) for p in plans], index=[p.mvi for p in plans])
    means = contrast.groupby(level=0).mean()
    assert means[2] < means[0] - 0.05, f"HBP peritumoral rim should be darker for M2: {means.to_dict()}"
    # ... but not a perfect separator
    assert contrast[2].min() < contrast[0].max(), "rim contrast alone should not separate M0 from M2"
    diam = pd.Series([p.anatomy.tumour.diameter for p in plans], index=[p.mvi for p in plans])
    assert diam[2].mean() > diam[0].mean()
