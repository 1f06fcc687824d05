"""Model bundles: contents (preprocessing, cohort summary, no patient ids), plain-data members, version checks,
integrity checks and atomic replacement. Uses the shared product case of tests/test_predict.py."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from cmdnet import __version__
from cmdnet.product.bundle import FORMAT_VERSION, load_bundle, write_bundle
from cmdnet.errors import BundleError
from tests.product.test_predict import METHOD, ROI_CFG, ProductCase, build_product_case


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> ProductCase:
    return build_product_case(tmp_path_factory.getbasetemp() / "product_case")


def _copy_with(case: ProductCase, tmp_path, **changes):
    target = tmp_path / "bundle"
    shutil.copytree(case.bundle, target)
    meta = json.loads((target / "bundle.json").read_text())
    meta.update(changes)
    (target / "bundle.json").write_text(json.dumps(meta))
    return target


def test_bundle_records_preprocessing_config_and_cohort_counts_but_no_patient_id(case):
    meta = json.loads((case.bundle / "bundle.json").read_text())
    assert meta["cmdnet_version"] == __version__ and meta["format_version"] == FORMAT_VERSION
    assert meta["method"] == METHOD and meta["strategy"] == "fold_ensemble" and meta["phases"] == ["PRE", "HBP"]
    pre = meta["preprocessing"]
    assert pre["orientation"] == "LPS"
    assert pre["roi"]["crop_shape_xyz"] == ROI_CFG["crop_shape_xyz"]
    assert pre["roi"]["margin_mm"] == ROI_CFG["margin_mm"] and pre["roi"]["normalisation"] == "zscore"
    assert pre["crop_shape_zyx"] == ROI_CFG["crop_shape_xyz"][::-1]
    assert meta["config"]["model"]["feature_dim"] == 16

    train_ids = case.folds.folds.loc[case.folds.folds["fold"] != 0, "patient_id"]
    expected = case.labels.loc[train_ids].value_counts()
    summary = meta["training_cohort"]
    assert summary["n_patients"] == len(train_ids)
    assert summary["label_counts"] == {f"M{c}": int(expected.get(c, 0)) for c in range(3)}
    assert summary["synthetic"] is True and summary["description"].startswith(
        f"SYNTHETIC cohort of {len(train_ids)} patients (M0 "), summary["description"]
    assert "not a medical device" in meta["notice"]

    for path in case.bundle.iterdir():
        blob = path.read_bytes()
        for pid in case.labels.index:
            assert pid.encode() not in blob, f"patient id {pid} found in {path.name}"


def test_members_are_plain_data_and_reproduce_the_fold_model(case):
    member = torch.load(case.bundle / "model_0.pt", weights_only=True)
    fold_model = torch.load(case.models[0], weights_only=True)
    assert member["builder"] == fold_model["builder"] and member["kwargs"] == fold_model["kwargs"]
    assert "train_ids" not in member and "val_ids" not in member
    for key, value in fold_model["state_dict"].items():
        assert torch.equal(member["state_dict"][key], value), key
    assert len(load_bundle(case.bundle).members) == 1
    assert len(load_bundle(case.ensemble).members) == 2


def test_a_bundle_of_another_cmdnet_version_is_refused_naming_both_versions(case, tmp_path):
    with pytest.raises(BundleError) as err:
        load_bundle(_copy_with(case, tmp_path, cmdnet_version="9.4.1"))
    message = str(err.value)
    assert "9.4.1" in message and __version__ in message and "rebuild" in message


def test_a_patch_release_is_accepted_and_another_format_version_refused(case, tmp_path):
    major, minor, *_ = __version__.split(".")
    assert load_bundle(_copy_with(case, tmp_path, cmdnet_version=f"{major}.{minor}.99")).meta
    shutil.rmtree(tmp_path / "bundle")
    with pytest.raises(BundleError, match=rf"format version {FORMAT_VERSION + 1}.*reads format version"):
        load_bundle(_copy_with(case, tmp_path, format_version=FORMAT_VERSION + 1))


def test_an_altered_or_missing_member_file_is_refused(case, tmp_path):
    target = _copy_with(case, tmp_path)
    with open(target / "model_0.pt", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(target)
    (target / "model_0.pt").unlink()
    with pytest.raises(BundleError, match="model_0.pt is missing"):
        load_bundle(target)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_writing_refuses_wrong_models_or_roi_and_replaces_atomically(case, tmp_path):
    with pytest.raises(BundleError, match="not a model of method 'ours'"):
        write_bundle(tmp_path / "b", [case.models[0]], method="ours", roi_cfg=ROI_CFG)
    with pytest.raises(BundleError, match=r"crop_shape_xyz \[20, 16, 8\]"):
        write_bundle(tmp_path / "b", [case.models[0]], method=METHOD,
                     roi_cfg={**ROI_CFG, "crop_shape_xyz": [20, 16, 8]})
    with pytest.raises(BundleError, match="refit"):
        write_bundle(tmp_path / "b", [case.models[0]], method=METHOD, roi_cfg=ROI_CFG, strategy="refit")
    assert list(tmp_path.iterdir()) == [], "a refused bundle must leave nothing behind"

    write_bundle(tmp_path / "b", [case.models[0], case.models[1]], method=METHOD, roi_cfg=ROI_CFG)
    write_bundle(tmp_path / "b", [case.models[1]], method=METHOD, roi_cfg=ROI_CFG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"], "no temporary directory may remain"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bundle.json", "model_0.pt"]
    assert load_bundle(tmp_path / "b").meta["members"][0]["fold"] == 1
