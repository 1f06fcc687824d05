"""`cmdnet predict`: a bundle's predictions for a patient's DICOM series and masks equal the out-of-fold
pipeline's predictions for the same model; no clinical input is read; batch mode; Grad-CAM maps.

`product_case` builds one tiny synthetic cohort, runs the workflow's conversion and ROI stages on it, trains a
tiny student on two folds and predicts their test patients (the OOF predictions); tests/test_bundle.py and
tests/test_export.py reuse it (it is built once per test session, whichever file asks first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cmdnet.data.folds import Partitions
from cmdnet.product.bundle import load_bundle, write_bundle
from cmdnet.product.predict import PhaseInput, predict_case, predict_cohort, about, write_record

PHASES = ["PRE", "HBP"]
METHOD = "s_pre_hbp"
ROI_CFG = {"crop_shape_xyz": [16, 16, 8], "margin_mm": 10.0, "normalisation": "zscore"}
COHORT_CFG = {"columns": {"patient_id": "patient_id", "mvi": "mvi", "grade": "grade", "dicom": "{phase}_dicom",
                          "series_uid": "{phase}_series_uid", "mask": "{phase}_mask"},
              "mvi_labels": {"M0": 0, "M1": 1, "M2": 2},
              "grade_labels": {"low": 0, "high": 1, "I": 0, "II": 0, "III": 1, "IV": 1}}
MODEL_CFG = {"width": 0.125, "feature_dim": 16, "norm": "batch", "cross_attention": {"n_tokens": 4}}
TRAIN_CFG = {"epochs": 2, "batch_size": 4, "lr": 0.01, "augmentation": {"flip": False, "rotate_deg": 0.0,
                                                             "intensity_jitter": 0.0}}
REPO = Path(__file__).resolve().parents[2]


@dataclass
class ProductCase:
    root: Path
    cohort: Path                  # synthetic cohort directory (clinical sheets deleted after training)
    sheet: Path
    nifti: Path                   # results/nifti-like directory of the workflow's conversion
    labels: pd.Series             # patient_id -> MVI code
    folds: Partitions
    models: dict[int, Path]       # fold -> model.pt
    oof: pd.DataFrame             # out-of-fold predictions of those folds
    bundle: Path                  # bundle of the fold-0 model only
    ensemble: Path                # bundle of the fold-0 and fold-1 models

    def test_ids(self, fold: int) -> list[str]:
        return self.folds.folds.loc[self.folds.folds["fold"] == fold, "patient_id"].tolist()

    def inputs(self, pid: str) -> dict[str, PhaseInput]:
        return {p: PhaseInput(self.cohort / "dicom" / pid / p, self.cohort / "masks" / f"{pid}_{p}.nii.gz")
                for p in PHASES}


_CACHE: dict[str, ProductCase] = {}


def build_product_case(root: Path) -> ProductCase:
    """The shared fixture's data (see the module docstring); about 10 s on one core."""
    if "case" in _CACHE:
        return _CACHE["case"]
    from cmdnet import stages
    from cmdnet.config import deep_merge, default_config
    from cmdnet.data.cohort import cohort_sources
    from cmdnet.data.folds import make_partitions
    from cmdnet.data.synth import SynthParams, write_cohort
    from cmdnet.labels import outcome
    from cmdnet.mvi.settings import job_settings
    from cmdnet.mvi.training.fold import load_mvi_data, predict_fold, train_method_fold

    cohort = root / "cohort"
    write_cohort(cohort, SynthParams(n_patients=9, seed=5, mvi_prevalence=(1, 1, 1)))
    sheet = cohort / "cohort.csv"
    ids = [f"SYN{i:03d}" for i in range(1, 10)]
    nifti, roi_dir = root / "nifti", root / "roi"
    roi_files = []
    sources = cohort_sources(sheet, COHORT_CFG, PHASES)
    for pid in ids:
        images = [str(nifti / pid / f"{p}.nii.gz") for p in PHASES]
        outs = [str(roi_dir / pid / f"{p}.npz") for p in PHASES]
        series = sources[pid].series(PHASES)
        stages.dicom_to_nifti(patient=pid, series=series, phases=PHASES, out_images=images,
                              out_sidecars=[i.replace(".nii.gz", ".json") for i in images])
        stages.extract_roi(patient=pid, series=series, masks={"mask_label": None, "mask_components": None},
                           roi=ROI_CFG, phases=PHASES, patch_phase=None, seed=0, images=images, out_rois=outs)
        roi_files += outs
    stages.assemble_dataset(rois=roi_files, patients=ids, phases=PHASES, patches_of=None,
                            out_dataset=root / "mvi.npz", out_manifest=root / "mvi_manifest.parquet")
    stages.cohort_labels(sheet=sheet, cohort=COHORT_CFG, phases=PHASES, out_labels=root / "labels.parquet")
    labels = outcome(root / "labels.parquet", "mvi")
    folds = make_partitions(labels, 3, 1, 0.34, seed=0)
    data = load_mvi_data(root / "mvi.npz", root / "labels.parquet", PHASES)
    settings = job_settings(deep_merge(default_config(), {"seed": 0, "mvi": {"model": MODEL_CFG,
                                                                             "training": TRAIN_CFG}}), METHOD)
    models, oof = {}, []
    for fold in (0, 1):
        models[fold] = root / METHOD / f"fold{fold}" / "model.pt"
        train_method_fold(data, folds, METHOD, 0, fold, settings, out_model=models[fold],
                          out_history=models[fold].with_name("history.csv"), progress=lambda _: None)
        oof.append(predict_fold(models[fold], data, folds, progress=lambda _: None)[0])
    # The product must work without any clinical input: remove it before anything is predicted.
    for name in ("clinical.csv", "clinical_dictionary.csv"):
        (cohort / name).unlink()
    bundle = root / "models" / METHOD
    write_bundle(bundle, [models[0]], method=METHOD, roi_cfg=ROI_CFG, labels=labels,
                 config_sections={"model": MODEL_CFG, "training": TRAIN_CFG}, synthetic=True)
    ensemble = root / "models" / "ensemble"
    write_bundle(ensemble, [models[0], models[1]], method=METHOD, roi_cfg=ROI_CFG, labels=labels)
    _CACHE["case"] = ProductCase(root, cohort, sheet, nifti, labels, folds, models,
                                 pd.concat(oof, ignore_index=True).set_index("patient_id"), bundle, ensemble)
    return _CACHE["case"]


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> ProductCase:
    return build_product_case(tmp_path_factory.getbasetemp() / "product_case")


def _oof_probs(case: ProductCase, pid: str) -> np.ndarray:
    return case.oof.loc[pid, ["prob_0", "prob_1", "prob_2"]].to_numpy(dtype=float)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cmdnet", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)


def test_bundle_prediction_from_dicom_equals_the_out_of_fold_prediction(case):
    bundle = load_bundle(case.bundle)
    test_ids = case.test_ids(0)
    assert test_ids
    for pid in test_ids:
        record = predict_case(bundle, case.inputs(pid), patient=pid)
        got = np.array([record["prob_M0"], record["prob_M1"], record["prob_M2"]])
        np.testing.assert_allclose(got, _oof_probs(case, pid), atol=1e-5,
                                   err_msg=f"{pid}: bundle prediction differs from the OOF prediction")
        assert record["p_mvi"] == pytest.approx(got[1] + got[2], abs=1e-12)
        assert record["predicted_class"] == ("M0", "M1", "M2")[int(np.argmax(got))]
        assert record["n_members"] == 1
    # The comparison can fail: the same model with another crop margin predicts measurably differently.
    other = write_bundle(case.root / "models" / "margin12", [case.models[0]], method=METHOD,
                         roi_cfg={**ROI_CFG, "margin_mm": 12.0})
    assert other["preprocessing"]["roi"]["margin_mm"] == 12.0
    shifted = predict_case(load_bundle(case.root / "models" / "margin12"), case.inputs(test_ids[0]))
    assert abs(shifted["prob_M0"] - _oof_probs(case, test_ids[0])[0]) > 1e-4


def test_fold_ensemble_is_the_mean_of_its_members_probabilities(case):
    ensemble = load_bundle(case.ensemble)
    pid = case.test_ids(0)[0]
    record = predict_case(ensemble, case.inputs(pid), patient=pid)
    singles = []
    for fold in (0, 1):
        one = write_bundle(case.root / "models" / f"single{fold}", [case.models[fold]], method=METHOD,
                           roi_cfg=ROI_CFG)
        assert one["members"][0]["fold"] == fold
        r = predict_case(load_bundle(case.root / "models" / f"single{fold}"), case.inputs(pid), patient=pid)
        singles.append([r["prob_M0"], r["prob_M1"], r["prob_M2"]])
    np.testing.assert_allclose([record["prob_M0"], record["prob_M1"], record["prob_M2"]],
                               np.mean(singles, axis=0), atol=1e-7)
    assert record["n_members"] == 2
    assert not np.allclose(singles[0], singles[1]), "the two fold models should differ"


def test_cli_prints_json_and_writes_csv_without_any_clinical_file(case, tmp_path):
    assert not (case.cohort / "clinical.csv").exists()
    pid = case.test_ids(0)[0]
    inputs = case.inputs(pid)
    out = tmp_path / "pred.csv"
    result = _cli("predict", "--bundle", str(case.bundle), "--pre", str(inputs["PRE"].dicom_dir),
                  "--hbp", str(inputs["HBP"].dicom_dir), "--pre-mask", str(inputs["PRE"].mask),
                  "--hbp-mask", str(inputs["HBP"].mask), "--out", str(out), "--digits", "6")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    np.testing.assert_allclose([record["prob_M0"], record["prob_M1"], record["prob_M2"]], _oof_probs(case, pid),
                               atol=1e-5)
    assert record["patient_id"] == "patient" and record["n_members"] == 1
    table = pd.read_csv(out)
    assert len(table) == 1 and table.loc[0, "predicted_class"] == record["predicted_class"]


def test_cli_refuses_a_bad_dicom_directory_with_one_clear_line(case, tmp_path):
    pid = case.test_ids(0)[0]
    inputs = case.inputs(pid)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _cli("predict", "--bundle", str(case.bundle), "--pre", str(empty),
                  "--hbp", str(inputs["HBP"].dicom_dir), "--pre-mask", str(inputs["PRE"].mask),
                  "--hbp-mask", str(inputs["HBP"].mask), "--out", str(tmp_path / "x.json"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "phase PRE" in lines[0] and str(empty) in lines[0], result.stderr
    assert not (tmp_path / "x.json").exists()


def test_batch_mode_one_row_per_patient_refused_patient_gets_an_error(case, tmp_path):
    test_ids = case.test_ids(0)
    sheet = pd.read_csv(case.sheet, dtype=str)
    sheet = sheet[sheet["patient_id"].isin(test_ids)].copy()
    # Paths relative to the new sheet's directory; labels are garbage: batch mode must not read them.
    for col in [c for c in sheet.columns if c.endswith(("_dicom", "_mask"))]:
        sheet[col] = [str(case.cohort / v) for v in sheet[col]]
    sheet["mvi"] = "not-a-label"
    broken = sheet.iloc[[0]].copy()
    broken["patient_id"] = "BROKEN1"
    broken["HBP_mask"] = str(tmp_path / "no_such_mask.nii.gz")
    sheet = pd.concat([sheet, broken], ignore_index=True)
    sheet_path = tmp_path / "new_patients.csv"
    sheet.to_csv(sheet_path, index=False)

    table = predict_cohort(load_bundle(case.bundle), sheet_path)
    assert table["patient_id"].tolist() == [*sheet["patient_id"]]
    ok = table[table["error"] == ""].set_index("patient_id")
    assert sorted(ok.index) == sorted(test_ids)
    for pid in test_ids:
        np.testing.assert_allclose(ok.loc[pid, ["prob_M0", "prob_M1", "prob_M2"]].to_numpy(float),
                                   _oof_probs(case, pid), atol=1e-5)
    bad = table.set_index("patient_id").loc["BROKEN1"]
    assert "patient BROKEN1" in bad["error"] and "phase HBP" in bad["error"] and "does not exist" in bad["error"]
    assert np.isnan(bad["prob_M0"])

    out = tmp_path / "table.csv"
    result = _cli("predict", "--bundle", str(case.bundle), "--cohort", str(sheet_path), "--out", str(out))
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["n_failed"] == 1
    written = pd.read_csv(out, keep_default_na=False)
    assert len(written) == len(sheet) and (written["error"] != "").sum() == 1


def test_cli_output_carries_the_notice_and_says_the_training_cohort_was_synthetic(case, tmp_path):
    pid = case.test_ids(0)[0]
    inputs = case.inputs(pid)
    out = tmp_path / "pred.json"
    result = _cli("predict", "--bundle", str(case.bundle), "--pre", str(inputs["PRE"].dicom_dir),
                  "--hbp", str(inputs["HBP"].dicom_dir), "--pre-mask", str(inputs["PRE"].mask),
                  "--hbp-mask", str(inputs["HBP"].mask), "--out", str(out))
    assert result.returncode == 0, result.stderr
    for where, record in (("stdout", json.loads(result.stdout)), (str(out), json.loads(out.read_text()))):
        assert "not a medical device" in record["notice"], f"{where}: no research-use notice"
        assert record["training_cohort"].startswith("SYNTHETIC cohort of"), f"{where}: {record['training_cohort']}"
        assert "p_mvi = prob_M1 + prob_M2" in record["interpretation"], where
        assert "predicted_grade" not in record and record["predicted_class"] in ("M0", "M1", "M2"), where
        probs = [record[f"prob_M{c}"] for c in range(3)]
        assert all(p == round(p, 3) for p in probs), f"{where}: probabilities not rounded to 3 decimals: {probs}"
    assert "not a medical device" in result.stderr and "SYNTHETIC" in result.stderr, "no notice for the terminal"


def test_batch_outputs_carry_the_notice_and_no_grade_column(case, tmp_path):
    table = predict_cohort(load_bundle(case.bundle), case.sheet)
    assert "predicted_class" in table.columns and "predicted_grade" not in table.columns
    bundle = load_bundle(case.bundle)
    header = about(bundle)
    write_record(table, tmp_path / "t.csv", header=header, digits=3)
    write_record(table, tmp_path / "t.json", header=header, digits=3)
    csv = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert (csv["notice"] == bundle.notice).all() and csv["training_cohort"].str.startswith("SYNTHETIC").all()
    page = json.loads((tmp_path / "t.json").read_text())
    assert page["notice"] == bundle.notice and len(page["patients"]) == len(table)
    assert "predicted_grade" not in page["patients"][0]


def test_a_bundle_that_does_not_record_its_cohort_says_so(case):
    meta = json.loads((case.ensemble / "bundle.json").read_text())
    assert meta["training_cohort"]["synthetic"] is None
    assert "does not record whether it was synthetic" in load_bundle(case.ensemble).training_cohort


def _physical_points(image: sitk.Image) -> np.ndarray:
    """LPS coordinates `(Z, Y, X, 3)` of every voxel centre."""
    size = image.GetSize()
    kz, ky, kx = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    index = np.stack([kx, ky, kz], axis=-1).astype(float)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (index * np.asarray(image.GetSpacing())) @ direction.T


def test_saliency_maps_lie_on_the_converted_grid_inside_the_crop_and_a_png_is_written(case, tmp_path):
    pid = case.test_ids(0)[0]
    out = tmp_path / "saliency"
    record = predict_case(load_bundle(case.bundle), case.inputs(pid), patient=pid, saliency_dir=out)
    assert set(record["saliency"]) == {"PRE", "HBP", "png"}
    peak = 0.0
    for phase in PHASES:
        cam = sitk.ReadImage(record["saliency"][phase])
        image = sitk.ReadImage(str(case.nifti / pid / f"{phase}.nii.gz"))
        assert cam.GetSize() == image.GetSize()
        np.testing.assert_allclose(cam.GetSpacing(), image.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(cam.GetOrigin(), image.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(cam.GetDirection(), image.GetDirection(), atol=1e-6)
        values = sitk.GetArrayFromImage(cam)
        assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-6
        peak = max(peak, float(values.max()))
        # Outside the crop's physical box the map must be exactly 0 (the crop grid covers the box only).
        with np.load(case.root / "roi" / pid / f"{phase}.npz") as z:
            origin, spacing, shape = z["crop_origin_mm"], z["crop_spacing_mm"], np.array(z["crop"].shape[::-1])
        lo, hi = origin - spacing / 2, origin + (shape - 0.5) * spacing
        points = _physical_points(image)
        outside = np.any((points < lo - 1e-3) | (points > hi + 1e-3), axis=-1)
        assert outside.any() and np.all(values[outside] == 0.0), f"{phase}: saliency outside the crop"
    assert peak > 0.5, "the map is scaled by its maximum over the phases; resampling keeps most of it"
    png = Path(record["saliency"]["png"])
    assert png.name == f"{pid}_gradcam.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000


def test_saliency_scale_bar_is_a_round_length_within_a_third_of_the_view():
    from cmdnet.product.saliency import scale_bar_mm

    assert scale_bar_mm(60.0) == 20.0 and scale_bar_mm(31.0) == 10.0 and scale_bar_mm(200.0) == 50.0
    assert scale_bar_mm(2.0) == 1.0  # never zero, even for a tiny crop
