"""Stage 2: tumour crops, 16^3 patches and dataset assembly (cmdnet.data.roi) on synthetic and real volumes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cmdnet.config import ConfigError
from cmdnet.errors import CohortError, InputError, CohortWarning
from cmdnet.data.datasets import assemble_dataset, load_dataset
from cmdnet.data.roi import RoiParams, extract_roi, load_mask_on_image_grid
from tests.conftest import shared_dicom_case

SIZE_XYZ = (40, 40, 20)
SPACING = (2.0, 2.0, 4.0)
ORIGIN = (-40.0, -30.0, -45.0)
CENTRE_MM = np.array([2.0, 0.0, -5.0])      # tumour centre, LPS mm
RADII_MM = np.array([17.0, 15.0, 21.0])
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def _grid_points(size=SIZE_XYZ, spacing=SPACING, origin=ORIGIN) -> np.ndarray:
    """Physical LPS coordinates (z, y, x, 3) of the voxel centres of an identity-direction grid."""
    k = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    return np.stack([origin[a] + k[2 - a] * spacing[a] for a in range(3)], axis=-1)


def _image(arr: np.ndarray, dtype=np.float32) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.astype(dtype))
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN)
    return img


def _phantom(centre=CENTRE_MM, radii=RADII_MM) -> tuple[sitk.Image, sitk.Image]:
    """A smooth background gradient with a bright ellipsoid tumour (+ fixed noise), and its mask."""
    p = _grid_points()
    inside = (((p - centre) / radii) ** 2).sum(-1) <= 1.0
    rng = np.random.default_rng(7)
    arr = 100.0 + 0.5 * p[..., 0] + 200.0 * inside + rng.normal(0.0, 5.0, inside.shape)
    return _image(arr), _image(inside, np.uint8)


@pytest.fixture()
def case(tmp_path: Path) -> dict[str, Path]:
    image, mask = _phantom()
    paths = {"image": tmp_path / "AP.nii.gz", "mask": tmp_path / "mask.nii.gz"}
    sitk.WriteImage(image, str(paths["image"]))
    sitk.WriteImage(mask, str(paths["mask"]))
    return paths


def _mask_bbox_mm(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Tumour box from the mask array (voxel edges), independent of the library's computation."""
    z, y, x = np.nonzero(sitk.GetArrayFromImage(mask))
    sp, o = np.asarray(SPACING), np.asarray(ORIGIN)
    lo = o + (np.array([x.min(), y.min(), z.min()]) - 0.5) * sp
    hi = o + (np.array([x.max(), y.max(), z.max()]) + 0.5) * sp
    return lo, hi


def _run(case, tmp_path, params=RoiParams(), patient="SYN001", phase="AP", mask=None):
    out = tmp_path / "roi" / patient / f"{phase}.npz"
    row = extract_roi(case["image"], mask or case["mask"], out, params, patient=patient, phase=phase)
    with np.load(out, allow_pickle=False) as z:
        return row, {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------------------- params


def test_params_from_dict_names_unknown_key_and_converts_lists():
    p = RoiParams.from_dict({"crop_shape_xyz": [32, 32, 16], "margin_mm": 5})
    assert p.crop_shape_xyz == (32, 32, 16) and p.margin_mm == 5
    with pytest.raises(ConfigError, match="config roi: unknown key.*margn_mm"):
        RoiParams.from_dict({"margn_mm": 5})
    with pytest.raises(InputError, match="normalisation"):
        RoiParams(normalisation="minmax")


# ----------------------------------------------------------------------------------------- crop


def test_crop_is_centred_on_tumour_with_requested_shape(case, tmp_path):
    row, roi = _run(case, tmp_path)
    assert roi["crop"].shape == (12, 24, 24) and roi["crop"].dtype == np.float32
    assert roi["crop_mask"].shape == (12, 24, 24) and roi["crop_mask"].dtype == np.uint8
    assert row["crop_shape_zyx"] == [12, 24, 24]
    com = np.array(np.nonzero(roi["crop_mask"])).mean(axis=1)        # (z, y, x) voxel index
    centre = (np.array(roi["crop_mask"].shape) - 1) / 2
    assert np.all(np.abs(com - centre) < 1.0), f"crop mask centre of mass {com} is off the crop centre {centre}"
    # Nearest-neighbour resampling keeps the tumour volume: mask fraction = tumour volume / crop volume.
    crop_volume = np.prod(roi["crop_spacing_mm"]) * roi["crop_mask"].size
    expected_fraction = row["tumour_volume_mm3"] / crop_volume
    assert 0.08 < expected_fraction < 0.2
    assert roi["crop_mask"].mean() == pytest.approx(expected_fraction, rel=0.1)
    # The tumour is bright: crop values inside the mask are far above those outside.
    assert roi["crop"][roi["crop_mask"] == 1].mean() > roi["crop"][roi["crop_mask"] == 0].mean() + 1.0
    assert row["crop_outside_fraction"] == 0.0
    expected_volume = sitk.GetArrayFromImage(sitk.ReadImage(str(case["mask"]))).sum() * np.prod(SPACING)
    assert row["tumour_volume_mm3"] == pytest.approx(expected_volume)


@pytest.mark.parametrize("margin", [0.0, 6.0, 10.0])
def test_margin_grows_crop_extent_by_twice_the_margin(case, tmp_path, margin):
    row, roi = _run(case, tmp_path, RoiParams(margin_mm=margin))
    lo, hi = _mask_bbox_mm(sitk.ReadImage(str(case["mask"])))
    extent = np.asarray(roi["crop_spacing_mm"]) * np.array([24, 24, 12])
    np.testing.assert_allclose(extent, hi - lo + 2 * margin, atol=1e-6)
    np.testing.assert_allclose(row["bbox_min_mm"], lo, atol=1e-6)
    np.testing.assert_allclose(row["spacing_mm"], roi["crop_spacing_mm"])
    first_centre = np.asarray(roi["crop_origin_mm"])
    np.testing.assert_allclose(first_centre - roi["crop_spacing_mm"] / 2, lo - margin, atol=1e-6)


def test_zscore_uses_box_statistics(case, tmp_path):
    row, roi = _run(case, tmp_path)
    # Statistics of the original voxels in the grown box, recomputed here from the raw array.
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(case["image"]))).astype(float)
    p = _grid_points()
    lo, hi = np.array(row["bbox_min_mm"]) - 10, np.array(row["bbox_max_mm"]) + 10
    box = np.all((p >= lo) & (p <= hi), axis=-1)
    assert row["norm_offset"] == pytest.approx(arr[box].mean(), rel=1e-6)
    assert row["norm_scale"] == pytest.approx(arr[box].std(), rel=1e-6)
    assert abs(row["norm_offset"] - arr.mean()) > 10, "whole-body mean would have been used"
    # The crop samples the same box, so it is close to zero mean / unit SD.
    assert abs(roi["crop"].mean()) < 0.15 and abs(roi["crop"].std() - 1.0) < 0.15


def test_percentile_normalisation_lies_in_unit_interval(case, tmp_path):
    _, roi = _run(case, tmp_path, RoiParams(normalisation="percentile"))
    assert roi["crop"].min() >= 0.0 and roi["crop"].max() <= 1.0
    assert roi["crop"].max() == pytest.approx(1.0) and roi["crop"].min() < 0.05


def test_crop_beyond_image_edge_is_filled_and_reported(tmp_path):
    # A tumour touching the top slab: the 10 mm margin reaches beyond the image in z.
    image, mask = _phantom(centre=np.array([0.0, 0.0, 26.0]), radii=np.array([8.0, 8.0, 6.0]))
    case = {"image": tmp_path / "img.nii.gz", "mask": tmp_path / "m.nii.gz"}
    sitk.WriteImage(image, str(case["image"]))
    sitk.WriteImage(mask, str(case["mask"]))
    row, roi = _run(case, tmp_path, RoiParams(normalisation="none", make_patches=False))
    assert 0.1 < row["crop_outside_fraction"] < 0.6
    top = roi["crop"][-1]                               # last z plane lies outside the image
    assert np.all(top == top.flat[0]), "outside region is not one fill value"
    assert top.flat[0] == pytest.approx(roi["crop"][:3].min(), abs=20), "fill is not the box minimum"


# ----------------------------------------------------------------------------------------- masks


def test_flipped_direction_mask_is_reoriented(case, tmp_path):
    mask = sitk.ReadImage(str(case["mask"]))
    flipped = sitk.DICOMOrient(mask, "RAI")              # same voxels, other storage order and direction
    assert flipped.GetDirection() != mask.GetDirection()
    for suffix in (".nii.gz", ".nrrd"):
        path = tmp_path / f"flipped{suffix}"
        sitk.WriteImage(flipped, str(path))
        loaded = load_mask_on_image_grid(path, sitk.ReadImage(str(case["image"])))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(loaded), sitk.GetArrayFromImage(mask))
    _, roi_plain = _run(case, tmp_path)
    _, roi_flip = _run(case, tmp_path, mask=tmp_path / "flipped.nrrd", patient="SYN002")
    np.testing.assert_array_equal(roi_flip["crop_mask"], roi_plain["crop_mask"])


def test_mask_values_are_binarised(case, tmp_path):
    labels = sitk.ReadImage(str(case["mask"])) * 3      # label value 3 instead of 1
    path = tmp_path / "labels.nrrd"
    sitk.WriteImage(labels, str(path))
    loaded = load_mask_on_image_grid(path, sitk.ReadImage(str(case["image"])))
    assert set(np.unique(sitk.GetArrayFromImage(loaded))) == {0, 1}


@pytest.mark.parametrize("change, expected", [
    ("size", r"size \(40, 40, 18\) != image \(40, 40, 20\)"),
    ("origin", r"origin .* != image"),
])
def test_mask_off_the_image_grid_is_refused_and_nothing_written(case, tmp_path, change, expected):
    mask = sitk.ReadImage(str(case["mask"]))
    if change == "size":
        mask = mask[:, :, :18]
    else:
        mask.SetOrigin(tuple(np.add(ORIGIN, (0.0, 2.5, 0.0))))
    bad = tmp_path / "bad_mask.nii.gz"
    sitk.WriteImage(mask, str(bad))
    out = tmp_path / "roi" / "SYN003" / "HBP.npz"
    with pytest.raises(CohortError, match=expected) as err:
        extract_roi(case["image"], bad, out, RoiParams(), patient="SYN003", phase="HBP")
    msg = str(err.value)
    assert "SYN003" in msg and "HBP" in msg and "bad_mask.nii.gz" in msg
    assert not out.exists(), "an off-grid mask must not produce an ROI file"
    assert not out.parent.exists() or not any(out.parent.iterdir()), "temporary files were left behind"


def test_multi_label_segmentation_is_refused_rather_than_cropping_every_label(case, tmp_path):
    tumour = sitk.ReadImage(str(case["mask"]))
    liver_and_tumour = tumour + 1                       # 1 everywhere ("liver"), 2 in the tumour
    path = tmp_path / "liver_tumour.nii.gz"
    sitk.WriteImage(liver_and_tumour, str(path))
    out = tmp_path / "out.npz"
    with pytest.raises(CohortError, match=r"several labels \[1, 2\]") as err:
        extract_roi(case["image"], path, out, RoiParams(), patient="SYN005", phase="HBP")
    assert "SYN005" in str(err.value) and "liver_tumour.nii.gz" in str(err.value)
    assert not out.exists()


def test_empty_mask_is_refused(case, tmp_path):
    empty = sitk.ReadImage(str(case["mask"])) * 0
    path = tmp_path / "empty.nii.gz"
    sitk.WriteImage(empty, str(path))
    out = tmp_path / "out.npz"
    with pytest.raises(CohortError, match="no tumour voxels"):
        extract_roi(case["image"], path, out, RoiParams(), patient="SYN004", phase="PRE")
    assert not out.exists()


# ----------------------------------------------------------------------------------------- patches


def test_patches_lie_in_tumour_and_are_deterministic(case, tmp_path):
    params = RoiParams(max_patches=5)
    row, roi = _run(case, tmp_path, params)
    patches, centres = roi["patches"], roi["patch_centres_mm"]
    assert patches.dtype == np.float32 and patches.shape[1:] == (16, 16, 16)
    assert 1 <= len(patches) <= 5 and row["n_patches"] == len(patches) and not row["patch_fallback"]
    mask = sitk.ReadImage(str(case["mask"]))
    for c in centres:
        assert mask[mask.TransformPhysicalPointToIndex(tuple(c))] == 1, f"patch centre {c} is outside the tumour"
    # Patches are brighter than the crop's background: mostly tumour.
    assert patches.mean() > roi["crop"][roi["crop_mask"] == 0].mean() + 1.0
    _, again = _run(case, tmp_path, params)
    np.testing.assert_array_equal(again["patches"], patches)
    np.testing.assert_array_equal(again["patch_centres_mm"], centres)
    # Without a cap more qualify, and the capped ones are among them.
    _, all_roi = _run(case, tmp_path, RoiParams(max_patches=1000))
    assert len(all_roi["patches"]) > 5
    assert all(any(np.allclose(c, a) for a in all_roi["patch_centres_mm"]) for c in centres)


def test_patch_centre_matches_patch_content(case, tmp_path):
    # With normalisation "none" the patch equals the isotropic resampling around its centre.
    _, roi = _run(case, tmp_path, RoiParams(normalisation="none", max_patches=2))
    image = sitk.ReadImage(str(case["image"]))
    for patch, c in zip(roi["patches"], roi["patch_centres_mm"]):
        ref = sitk.Resample(image, (16, 16, 16), sitk.Transform(), sitk.sitkLinear,
                            tuple(c - 7.5 * 1.5), (1.5, 1.5, 1.5), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        np.testing.assert_allclose(patch, sitk.GetArrayFromImage(ref), rtol=1e-4, atol=1e-3)


def test_tiny_tumour_gets_one_fallback_patch_at_centroid(tmp_path):
    image, _ = _phantom()
    tiny = np.zeros(SIZE_XYZ[::-1], np.uint8)
    tiny[10, 20:22, 20:22] = 1                            # 2 x 2 x 1 voxels: no 16^3 patch is half tumour
    case = {"image": tmp_path / "img.nii.gz", "mask": tmp_path / "tiny.nii.gz"}
    sitk.WriteImage(image, str(case["image"]))
    sitk.WriteImage(_image(tiny, np.uint8), str(case["mask"]))
    row, roi = _run(case, tmp_path)
    assert row["patch_fallback"] is True and row["n_patches"] == 1
    assert roi["patches"].shape == (1, 16, 16, 16)
    centroid = np.asarray(ORIGIN) + np.array([20.5, 20.5, 10.0]) * np.asarray(SPACING)
    np.testing.assert_allclose(roi["patch_centres_mm"][0], centroid, atol=1e-6)
    assert np.isfinite(roi["patches"]).all()


def test_no_patches_when_disabled(case, tmp_path):
    row, roi = _run(case, tmp_path, RoiParams(make_patches=False))
    assert roi["patches"].shape == (0, 16, 16, 16) and roi["patch_centres_mm"].shape == (0, 3)
    assert row["n_patches"] == 0


# ----------------------------------------------------------------------------------------- datasets


def test_assemble_dataset_stacks_phases_in_order(case, tmp_path):
    params = RoiParams(max_patches=3)
    paths = {}
    for pid in ("SYN001", "SYN002"):
        for phase, norm in (("PRE", "zscore"), ("HBP", "percentile")):
            out = tmp_path / "roi" / pid / f"{phase}.npz"
            extract_roi(case["image"], case["mask"], out, RoiParams(normalisation=norm, max_patches=3),
                        patient=pid, phase=phase)
            paths[(pid, phase)] = out
    out = tmp_path / "datasets" / "mvi.npz"
    manifest = assemble_dataset(paths, ["HBP", "PRE"], out, tmp_path / "datasets" / "mvi_manifest.parquet",
                                with_patches_of="HBP")
    data = load_dataset(out)
    assert list(data["patient_id"]) == ["SYN001", "SYN002"]
    assert data["images"].shape == (2, 2, 12, 24, 24) and data["images"].dtype == np.float32
    assert data["masks"].shape == (2, 2, 12, 24, 24) and data["masks"].dtype == np.uint8
    with np.load(paths[("SYN002", "PRE")]) as z:
        np.testing.assert_array_equal(data["images"][1, 1], z["crop"])   # phase order HBP, PRE
    assert data["images"][:, 0].min() >= 0 and data["images"][:, 0].max() <= 1   # HBP: percentile
    assert data["patches"].shape == (2 * params.max_patches, 16, 16, 16)
    assert list(data["patch_patient"]) == ["SYN001"] * 3 + ["SYN002"] * 3
    saved = pd.read_parquet(tmp_path / "datasets" / "mvi_manifest.parquet")
    assert len(saved) == 4 and list(saved["phase"]) == ["HBP", "PRE", "HBP", "PRE"]
    pd.testing.assert_frame_equal(saved, manifest)


def test_assemble_dataset_refuses_mismatched_shapes(case, tmp_path):
    paths = {}
    for pid, shape in (("SYN001", (24, 24, 12)), ("SYN002", (20, 24, 12))):
        out = tmp_path / f"{pid}.npz"
        extract_roi(case["image"], case["mask"], out, RoiParams(crop_shape_xyz=shape, make_patches=False),
                    patient=pid, phase="PRE")
        paths[(pid, "PRE")] = out
    target = tmp_path / "ds.npz"
    with pytest.raises(CohortError, match=r"patient SYN002.*\(12, 24, 20\)"):
        assemble_dataset(paths, ["PRE"], target, tmp_path / "manifest.parquet")
    assert not target.exists()
    with pytest.raises(CohortError, match="patient SYN001, phase HBP"):
        assemble_dataset({("SYN001", "PRE"): paths[("SYN001", "PRE")]}, ["PRE", "HBP"], target,
                         tmp_path / "manifest.parquet")


# ----------------------------------------------------------------------------------------- real case


def test_real_ct_liver_crop_lands_on_the_liver(tmp_path):
    root = shared_dicom_case("ge_ct_liver_3slice_with_mask")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(root / "dicom")))
    image = sitk.Cast(sitk.DICOMOrient(reader.Execute(), "LPS"), sitk.sitkFloat32)
    image_path = tmp_path / "CT.nii.gz"
    sitk.WriteImage(image, str(image_path))
    seg = root / "ref" / "liver_seg.nrrd"

    mask = load_mask_on_image_grid(seg, image, patient="CT1", phase="PRE", components="all")
    liver = sitk.GetArrayFromImage(mask)
    assert liver.sum() == 107098                          # every labelled voxel kept
    # The reference segmentation has three stray voxels apart from the liver: by default only the largest
    # component is kept, with a warning that names the patient and the sizes.
    with pytest.warns(CohortWarning, match=r"patient CT1, phase PRE, .*liver_seg.nrrd: tumour mask holds 4 "
                                           r"separate lesions of 107094, 2, 1, 1 voxels"):
        largest = load_mask_on_image_grid(seg, image, patient="CT1", phase="PRE")
    assert sitk.GetArrayFromImage(largest).sum() == 107094

    # No margin: the liver is 3 slices (3 mm) thick, so any z margin would dilute the crop.
    out = tmp_path / "ct.npz"
    row = extract_roi(image_path, seg, out, RoiParams(margin_mm=0.0, make_patches=False),
                      patient="CT1", phase="PRE", mask_components="all")
    with np.load(out, allow_pickle=False) as z:
        roi = {k: z[k] for k in z.files}
    assert roi["crop_mask"].mean() > 0.5, f"crop does not land on the liver ({roi['crop_mask'].mean():.2f})"
    assert row["tumour_volume_mm3"] == pytest.approx(107098 * np.prod(image.GetSpacing()), rel=1e-6)
    crop_centre = np.asarray(roi["crop_origin_mm"]) + (np.array([24, 24, 12]) - 1) / 2 * roi["crop_spacing_mm"]
    z, y, x = np.nonzero(liver)
    lo = np.array(image.TransformIndexToPhysicalPoint((int(x.min()), int(y.min()), int(z.min()))))
    hi = np.array(image.TransformIndexToPhysicalPoint((int(x.max()), int(y.max()), int(z.max()))))
    assert np.all((crop_centre >= lo) & (crop_centre <= hi)), f"crop centre {crop_centre} outside liver box"
    # The liver is soft tissue (~40-70 HU), whereas the crop's margin holds fat/air: inside is brighter.
    assert roi["crop"][roi["crop_mask"] == 1].mean() > roi["crop"][roi["crop_mask"] == 0].mean()


# ----------------------------------------------------------------------------------------- crop modes


def _write_case(tmp_path: Path, name: str, image: sitk.Image, mask: sitk.Image) -> dict[str, Path]:
    paths = {"image": tmp_path / f"{name}_img.nii.gz", "mask": tmp_path / f"{name}_mask.nii.gz"}
    sitk.WriteImage(image, str(paths["image"]))
    sitk.WriteImage(mask, str(paths["mask"]))
    return paths


def test_crop_params_need_a_size_for_fixed_mm_and_accept_one_number():
    with pytest.raises(InputError, match="crop_mode 'fixed_mm' needs crop_size_mm"):
        RoiParams(crop_mode="fixed_mm")
    with pytest.raises(InputError, match="crop_mode must be one of"):
        RoiParams(crop_mode="fit")
    assert RoiParams.from_dict({"crop_mode": "fixed_mm", "crop_size_mm": 64}).crop_size_mm == (64.0, 64.0, 64.0)
    with pytest.raises(InputError, match="crop_size_mm must be"):
        RoiParams(crop_mode="fixed_mm", crop_size_mm=[64, 64])


def test_fixed_mm_crops_keep_a_big_and_a_small_tumours_size_ratio_and_fit_box_does_not(tmp_path):
    small = _write_case(tmp_path, "small", *_phantom(radii=np.array([6.0, 6.0, 8.0])))
    big = _write_case(tmp_path, "big", *_phantom(radii=np.array([12.0, 12.0, 16.0])))
    fixed = RoiParams(crop_mode="fixed_mm", crop_size_mm=(48, 48, 48), crop_shape_xyz=(24, 24, 24),
                      make_patches=False)
    fit = RoiParams(crop_shape_xyz=(24, 24, 24), make_patches=False)
    counts = {}
    for mode, params in (("fixed", fixed), ("fit", fit)):
        for name, case in (("small", small), ("big", big)):
            row, roi = _run(case, tmp_path, params, patient=f"{mode}{name}")
            counts[mode, name] = int(roi["crop_mask"].sum())
            if mode == "fixed":
                np.testing.assert_allclose(roi["crop_spacing_mm"], [2.0, 2.0, 2.0])   # same for every patient
                assert row["crop_cuts_tumour"] is False
    volume_ratio = counts["fixed", "big"] / counts["fixed", "small"]
    assert volume_ratio == pytest.approx(8.0, rel=0.2), f"fixed_mm: big/small tumour voxels {volume_ratio:.2f}, not ~8"
    # fit_box stretches each tumour to the box: size survives only through the fixed margin's share of it
    # ((24 / 44) / (12 / 32))^3 = 3.1 here, far from the true 8.
    fit_ratio = counts["fit", "big"] / counts["fit", "small"]
    assert fit_ratio < 0.5 * volume_ratio, f"fit_box kept the size ratio ({fit_ratio:.2f})"


def test_fixed_mm_keeps_the_aspect_ratio_of_an_elongated_tumour(tmp_path):
    case = _write_case(tmp_path, "long", *_phantom(radii=np.array([20.0, 10.0, 10.0])))
    params = RoiParams(crop_mode="fixed_mm", crop_size_mm=60, crop_shape_xyz=(30, 30, 30), make_patches=False)
    _, roi = _run(case, tmp_path, params)
    z, y, x = np.nonzero(roi["crop_mask"])
    aspect = (x.max() - x.min() + 1) / (y.max() - y.min() + 1)
    assert aspect == pytest.approx(2.0, rel=0.15), f"x/y extent {aspect:.2f} of a 2:1 tumour"


def test_a_tumour_larger_than_the_fixed_crop_is_cut_with_a_warning(case, tmp_path):
    params = RoiParams(crop_mode="fixed_mm", crop_size_mm=20, make_patches=False)
    with pytest.warns(CohortWarning, match=r"patient SYN001, phase AP, .*does not fit in the fixed crop"):
        row, _ = _run(case, tmp_path, params)
    assert row["crop_cuts_tumour"] is True


def _stripes() -> tuple[sitk.Image, sitk.Image]:
    """1 mm isotropic image of stripes along x (100, 0, 0, 100, ...: period 3 voxels) and a tumour box."""
    arr = np.zeros((30, 60, 60), np.float32)
    arr[:, :, ::3] = 100.0
    image = sitk.GetImageFromArray(arr)
    mask_arr = np.zeros(arr.shape, np.uint8)
    mask_arr[10:21, 20:41, 20:41] = 1
    mask = sitk.GetImageFromArray(mask_arr)
    return image, mask


def test_antialiasing_smooths_before_downsampling_with_sigma_from_the_factor(tmp_path):
    image, mask = _stripes()
    case = _write_case(tmp_path, "stripes", image, mask)
    # Box 21 x 21 x 11 mm + 9.5 mm margin = 40 x 40 x 30 mm on 10 x 10 x 10 voxels: 4 x 4 x 3 mm, factors 4, 4, 3;
    # samples fall on voxel centres 12, 16, 20, ...: every 4th voxel of a period-3 pattern.
    params = dict(crop_shape_xyz=(10, 10, 10), margin_mm=9.5, normalisation="none", make_patches=False)
    from cmdnet.data.roi import antialias_sigma_vox

    np.testing.assert_allclose(antialias_sigma_vox(image, np.array([4.0, 4.0, 3.0])), [1.5, 1.5, 1.0])
    np.testing.assert_allclose(antialias_sigma_vox(image, np.array([0.5, 1.0, 2.0])), [0.0, 0.0, 0.5])
    _, plain = _run(case, tmp_path, RoiParams(**params), patient="plain")
    _, smooth = _run(case, tmp_path, RoiParams(**params, antialias=True), patient="smooth")
    assert plain["crop"].std() > 30, "without smoothing, every 4th voxel of period-3 stripes is an aliased pattern"
    assert smooth["crop"].std() < 1.0, f"anti-aliased crop still striped (SD {smooth['crop'].std():.2f})"
    assert smooth["crop"].mean() == pytest.approx(100 / 3, abs=1.0)
    # The same as smoothing the whole image with that SD and then resampling linearly.
    from scipy.ndimage import gaussian_filter

    blurred = sitk.GetImageFromArray(gaussian_filter(sitk.GetArrayFromImage(image), (1.0, 1.5, 1.5),
                                                     mode="nearest", truncate=4.0))
    ref = sitk.Resample(blurred, (10, 10, 10), sitk.Transform(), sitk.sitkLinear,
                        tuple(smooth["crop_origin_mm"]), tuple(smooth["crop_spacing_mm"]), _IDENTITY)
    np.testing.assert_allclose(smooth["crop"], sitk.GetArrayFromImage(ref), atol=1e-3)


def test_antialiasing_leaves_a_crop_alone_when_the_grid_is_not_coarser(case, tmp_path):
    # The phantom's 2 x 2 x 4 mm voxels cropped to 1 mm: nothing to smooth.
    params = dict(crop_mode="fixed_mm", crop_size_mm=(48, 48, 48), crop_shape_xyz=(48, 48, 48), make_patches=False)
    _, plain = _run(case, tmp_path, RoiParams(**params), patient="plain")
    _, smooth = _run(case, tmp_path, RoiParams(**params, antialias=True), patient="smooth")
    np.testing.assert_array_equal(plain["crop"], smooth["crop"])


# ----------------------------------------------------------------------------------------- mask forms


def test_mask_label_crops_the_labelled_tumour_of_a_multi_label_mask(case, tmp_path):
    tumour = sitk.ReadImage(str(case["mask"]))
    liver = _image(np.pad(np.ones((16, 36, 36), np.uint8), ((2, 2), (2, 2), (2, 2))), np.uint8)
    labelled = sitk.Cast(liver, sitk.sitkUInt8) + tumour       # liver 1, tumour 2
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(labelled, str(path))
    _, plain = _run(case, tmp_path, RoiParams(make_patches=False), patient="plain")
    out = tmp_path / "labelled.npz"
    extract_roi(case["image"], path, out, RoiParams(make_patches=False), patient="SYN006", phase="HBP", mask_label=2)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["crop_mask"], plain["crop_mask"])
        np.testing.assert_array_equal(z["crop"], plain["crop"])
    with pytest.raises(CohortError, match=r"tumour label 3 \(cohort.mask_label\) is absent from the mask; labels "
                                          r"present: \[1, 2\]"):
        extract_roi(case["image"], path, tmp_path / "x.npz", RoiParams(), patient="SYN006", phase="HBP", mask_label=3)


def test_a_soft_float_mask_gets_its_own_message_and_a_0_1_float_mask_is_accepted(case, tmp_path):
    tumour = sitk.Cast(sitk.ReadImage(str(case["mask"])), sitk.sitkFloat32)
    sitk.WriteImage(tumour, str(tmp_path / "binary_float.nrrd"))
    load_mask_on_image_grid(tmp_path / "binary_float.nrrd", sitk.ReadImage(str(case["image"])))
    sitk.WriteImage(tumour * 0.8, str(tmp_path / "soft.nrrd"))
    with pytest.raises(CohortError, match=r"fractional values \(\d+ voxels, pixel type 32-bit float\): a soft or "
                                          r"probability map, not a label map; threshold it") as err:
        extract_roi(case["image"], tmp_path / "soft.nrrd", tmp_path / "o.npz", RoiParams(), patient="SYN007",
                    phase="PRE")
    assert "several labels" not in str(err.value)


def test_separate_lesions_use_the_largest_with_a_warning_or_the_declared_choice(case, tmp_path):
    arr = np.zeros(SIZE_XYZ[::-1], np.uint8)
    arr[8:12, 10:20, 10:20] = 1          # 400 voxels
    arr[14:16, 30:33, 30:33] = 1         # 18 voxels, apart
    path = tmp_path / "two.nii.gz"
    sitk.WriteImage(_image(arr, np.uint8), str(path))
    with pytest.warns(CohortWarning, match=r"patient SYN008, phase AP, .*two.nii.gz: tumour mask holds 2 separate "
                                           r"lesions of 400, 18 voxels \(6.4, 0.288 cm3\); using the largest"):
        row, roi = _run(case, tmp_path, RoiParams(make_patches=False), patient="SYN008", mask=path)
    assert row["mask_lesions"] == 2 and row["mask_lesions_kept"] == "largest"
    assert row["tumour_volume_mm3"] == pytest.approx(400 * 16.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a declared choice is silent
        out = tmp_path / "all.npz"
        row_all = extract_roi(case["image"], path, out, RoiParams(make_patches=False), patient="SYN008", phase="AP",
                              mask_components="all")
    assert row_all["tumour_volume_mm3"] == pytest.approx(418 * 16.0)
    with pytest.raises(CohortError, match="2 separate lesions .* \\(cohort.mask_components: error\\)"):
        extract_roi(case["image"], path, tmp_path / "e.npz", RoiParams(), patient="SYN008", phase="AP",
                    mask_components="error")
    assert not (tmp_path / "e.npz").exists()
