"""train_fold on a tiny synthetic patch set: output form, learning, determinism, input errors; cifa_spectra."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from cmdnet.config import ConfigError

from cmdnet.errors import CohortError, InputError
from cmdnet.grade import (
    GRADE_METHODS,
    GradeTrainConfig,
    build_grade_model,
    cifa_spectra,
    run_fold,
    train_fold,
)
from cmdnet.grade.train import patch_samples, subsample_patches, train_model, training_device

PIDS = [f"P{i:02d}" for i in range(12)]
LABELS = {p: i % 2 for i, p in enumerate(PIDS)}
TRAIN, TEST = PIDS[:8], PIDS[8:]
METHODS = [(m, "3d") for m in GRADE_METHODS] + [(m, "2d") for m in ("local", "dcca", "cifa")]
CONFIG = GradeTrainConfig(iterations=60, batch_size=8, lr=3e-3, decay_every=20, local_channels=(4, 8),
                          nonlocal_channels=8, nonlocal_inter_channels=8, nonlocal_subsample=True, feature_dim=8, common_dim=4, dcca_dim=2,
                          dcca_pretrain_iterations=10, seed=1, device="cpu")


def _cohort(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3-5 noisy patches per patient; high-grade patches are brighter by one noise SD (a strong signal)."""
    rng = np.random.default_rng(seed)
    patches, owner = [], []
    for p in PIDS:
        n = int(3 + rng.integers(3))
        shift = 0.5 if LABELS[p] else -0.5
        patches.append(rng.normal(shift, 1.0, size=(n, 16, 16, 16)).astype(np.float32))
        owner += [p] * n
    return np.concatenate(patches), np.array(owner)


@pytest.fixture(scope="module")
def fold():
    patches, owner = _cohort()
    logs: list[str] = []
    result = run_fold(patches, owner, LABELS, TRAIN, TEST, METHODS, CONFIG, progress=logs.append)
    return result.predictions, result, logs, patches, owner


def test_one_row_per_method_dim_and_test_patient(fold):
    df, _, logs, _, _ = fold
    assert list(df.columns) == ["method", "dim", "patient_id", "label", "prob_high", "error"]
    assert (df["error"] == "").all()
    assert len(df) == len(METHODS) * len(TEST)
    for (method, dim), rows in df.groupby(["method", "dim"]):
        assert sorted(rows["patient_id"]) == TEST, f"{method}/{dim} does not cover the test patients"
    assert set(zip(df["method"], df["dim"])) == set(METHODS)
    assert df["label"].tolist() == [LABELS[p] for p in df["patient_id"]]
    assert df["prob_high"].between(0, 1).all()
    last = [line for line in logs if line.startswith("cifa/3d on cpu: iteration 60/60")]
    assert len(last) == 1, logs
    # staircase decay: lr = 3e-3 * 0.99 ** (60 // 20)
    assert last[0].endswith(f"lr {3e-3 * 0.99 ** 3:.3g}"), last[0]


def test_learns_the_intensity_signal(fold):
    df, *_ = fold
    correct = (df["prob_high"] > 0.5) == (df["label"] == 1)
    per_model = correct.groupby([df["method"], df["dim"]]).mean()
    assert per_model.max() == 1.0, f"no model separates the test patients:\n{per_model}"
    assert correct.mean() > 0.75, f"overall patient accuracy {correct.mean():.2f} is near chance"


def test_same_seed_same_numbers_regardless_of_other_methods(fold):
    df, _, _, patches, owner = fold
    subset = [("cifa", "3d"), ("dcca", "2d")]
    again = train_fold(patches, owner, LABELS, TRAIN, TEST, subset, CONFIG, progress=lambda s: None)
    expected = df.set_index(["method", "dim"]).loc[subset].reset_index()
    pd.testing.assert_frame_equal(again, expected, check_exact=True)


def test_different_seed_changes_numbers(fold):
    df, _, _, patches, owner = fold
    same = replace(CONFIG, iterations=5)
    other = replace(CONFIG, iterations=5, seed=2)
    a = train_fold(patches, owner, LABELS, TRAIN, TEST, [("local", "2d")], same, progress=lambda s: None)
    b = train_fold(patches, owner, LABELS, TRAIN, TEST, [("local", "2d")], other, progress=lambda s: None)
    assert not np.allclose(a["prob_high"], b["prob_high"])


def test_cifa_spectra_of_the_test_patches_are_in_the_diagnostics(fold):
    _, result, _, patches, _ = fold
    spectra = result.diagnostics[("cifa", "3d")]["spectra"]
    assert spectra["sv_common_1"].shape == (8,) and spectra["sv_individual_2"].shape == (8,)
    # J_i has rank <= k = 4 and A_i rank <= I_i - k = 4
    assert np.all(spectra["sv_common_1"][4:] < 1e-6 * spectra["sv_common_1"][0])
    assert np.all(spectra["sv_individual_1"][4:] < 1e-6 * spectra["sv_individual_1"][0])
    assert spectra["orthogonality_1"] < 1e-5 and spectra["orthogonality_2"] < 1e-5
    for i in (1, 2):
        assert 0 < spectra[f"energy_common_{i}"] < 1.5 and spectra[f"energy_residual_{i}"] < 0.2
    assert "spectra" not in result.diagnostics[("concat", "3d")]
    with pytest.raises(ValueError, match="needs a cifa"):
        cifa_spectra(build_grade_model("concat", "3d", **CONFIG.model_kwargs()), patches[:4])


def test_dcca_reports_training_and_heldout_correlations(fold):
    _, result, logs, _, _ = fold
    info = result.diagnostics[("dcca", "2d")]["dcca"]
    assert info["batch_patients"] == len(TRAIN) and info["dcca_dim"] == 2
    for stage in ("after_pretraining", "final"):
        assert len(info[stage]["train"]) == 2 and len(info[stage]["heldout"]) == 2
        assert all(-1 <= c <= 1 for c in info[stage]["heldout"]), info[stage]
    assert any(line.startswith("dcca/2d on cpu: DCCA pre-training 10/10") for line in logs), logs


def test_2d_samples_are_axial_slices():
    patches = np.arange(2 * 16**3, dtype=np.float32).reshape(2, 16, 16, 16)
    x, src = patch_samples(patches, "2d", "all")
    assert x.shape == (32, 16, 16) and src.tolist() == [0] * 16 + [1] * 16
    np.testing.assert_array_equal(x[17], patches[1, 1])
    x, src = patch_samples(patches, "2d", "central")
    np.testing.assert_array_equal(x, patches[:, 8])


def test_input_errors_name_the_patient():
    patches, owner = _cohort()
    quick = GradeTrainConfig(iterations=1, batch_size=2)
    with pytest.raises(CohortError, match="patient P11: no grade label"):
        train_fold(patches, owner, {p: LABELS[p] for p in PIDS[:11]}, TRAIN, TEST, [("local", "3d")], quick)
    keep = owner != "P09"
    with pytest.raises(CohortError, match="patient P09: no 16\\^3 patch"):
        train_fold(patches[keep], owner[keep], LABELS, TRAIN, TEST, [("local", "3d")], quick)
    bad = patches.copy()
    bad[owner == "P03"] = np.nan
    with pytest.raises(InputError, match="patient P03: patch holds non-finite"):
        train_fold(bad, owner, LABELS, TRAIN, TEST, [("local", "3d")], quick)
    with pytest.raises(InputError, match="both in the training and the test"):
        train_fold(patches, owner, LABELS, TRAIN, TRAIN[:2], [("local", "3d")], quick)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        GradeTrainConfig(batch_size=1)


QUICK = replace(CONFIG, iterations=6, dcca_pretrain_iterations=3)


def test_a_failing_model_leaves_the_other_models_of_the_fold_intact(monkeypatch):
    """A non-finite DCCA loss fails dcca only: its rows are NaN with the message, the others are unchanged."""
    patches, owner = _cohort()
    methods = [("local", "3d"), ("dcca", "3d"), ("cifa", "2d")]
    healthy = run_fold(patches, owner, LABELS, TRAIN, TEST, methods, QUICK, progress=lambda s: None)
    monkeypatch.setattr("cmdnet.grade.fusion.dcca_loss", lambda h1, h2, r1, r2: (h1 * float("nan")).sum())
    logs: list[str] = []
    broken = run_fold(patches, owner, LABELS, TRAIN, TEST, methods, QUICK, progress=logs.append)
    pred = broken.predictions
    dcca = pred[pred["method"] == "dcca"]
    assert dcca["prob_high"].isna().all() and dcca["error"].str.contains("dcca/3d: non-finite loss").all(), dcca
    assert broken.failures == [{"method": "dcca", "dim": "3d", "error": dcca["error"].iloc[0]}]
    others = pred["method"] != "dcca"
    pd.testing.assert_frame_equal(pred[others].reset_index(drop=True),
                                  healthy.predictions[others].reset_index(drop=True))
    assert any("dcca/3d FAILED" in line for line in logs), logs


def test_a_killed_fold_resumes_to_the_same_models(tmp_path):
    """Killed inside dcca/2d (after its pre-training): the restart skips local/3d, continues dcca/2d from its
    last checkpoint and trains cifa/3d, giving exactly the predictions and diagnostics of an unbroken run."""
    patches, owner = _cohort()
    methods = [("local", "3d"), ("dcca", "2d"), ("cifa", "3d")]
    config = replace(CONFIG, iterations=12, dcca_pretrain_iterations=4, checkpoint_every=4)
    unbroken = run_fold(patches, owner, LABELS, TRAIN, TEST, methods, config, progress=lambda s: None)
    ckpt = tmp_path / "fold.pt"
    with pytest.raises(InterruptedError):
        run_fold(patches, owner, LABELS, TRAIN, TEST, methods, config, progress=lambda s: None,
                 checkpoint_path=ckpt, stop_after=("dcca", "2d", 8))
    assert ckpt.exists()
    logs: list[str] = []
    resumed = run_fold(patches, owner, LABELS, TRAIN, TEST, methods, config, progress=logs.append,
                       checkpoint_path=ckpt)
    pd.testing.assert_frame_equal(resumed.predictions, unbroken.predictions, check_exact=True)
    assert resumed.diagnostics[("dcca", "2d")]["dcca"] == unbroken.diagnostics[("dcca", "2d")]["dcca"]
    assert "local/3d: finished before the restart, taken from the checkpoint" in logs, logs
    assert any(line.startswith("dcca/2d on cpu: resuming after iteration 8") for line in logs), logs

    changed = replace(config, lr=config.lr / 2)   # another configuration: the checkpoint is stale
    logs.clear()
    run_fold(patches, owner, LABELS, TRAIN, TEST, [("local", "3d")], changed, progress=logs.append,
             checkpoint_path=ckpt)
    assert any(line.startswith("ignoring checkpoint") for line in logs), logs


def test_grade_jobs_use_the_shared_device_policy(monkeypatch):
    """The policy itself is tested in tests/test_device.py; here: grading goes through it."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("SLURM_JOB_ID", "7")   # a SLURM job that was given GPU 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    logs: list[str] = []
    assert training_device("auto", logs.append).type == "cpu"
    assert logs[0].startswith("WARNING: this job claimed GPU") and logs[1].startswith("device: cpu"), logs
    with pytest.raises(ConfigError, match="'cuda' was asked for"):
        training_device("cuda", logs.append)
    with pytest.raises(ValueError, match="device must be one of"):
        GradeTrainConfig(device="gpu")


def test_mixed_precision_code_path_runs_on_the_cpu_and_fp16_is_refused():
    patches, owner = _cohort()
    config = replace(QUICK, precision="bf16")
    pred = train_fold(patches, owner, LABELS, TRAIN, TEST, [("cifa", "3d"), ("dcca", "2d")], config,
                      progress=lambda s: None)
    assert pred["prob_high"].between(0, 1).all() and (pred["error"] == "").all(), pred
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        train_fold(patches, owner, LABELS, TRAIN, TEST, [("local", "3d")], replace(QUICK, precision="fp16"))


def test_dcca_dim_must_be_well_below_the_patients_of_a_correlation_batch():
    patches, owner = _cohort()
    # a configuration error, not a numerical failure: it stops the fold at once (8 training patients)
    with pytest.raises(ValueError, match="dcca_dim 3 is not well below the 8 distinct training patients"):
        train_fold(patches, owner, LABELS, TRAIN, TEST, [("dcca", "3d")], replace(QUICK, dcca_dim=3),
                   progress=lambda s: None)


def test_patch_subset_is_redrawn_per_seed_and_keeps_small_patients_whole():
    owner = np.array(["A"] * 10 + ["B"] * 2 + ["C"] * 5)
    first = subsample_patches(owner, 4, seed=0)
    assert [int((owner[first] == p).sum()) for p in "ABC"] == [4, 2, 4]
    assert np.array_equal(first, subsample_patches(owner, 4, seed=0))
    assert not np.array_equal(first, subsample_patches(owner, 4, seed=1))
    assert np.array_equal(subsample_patches(owner, None, seed=0), np.arange(len(owner)))
    # a patient's draw does not depend on the other patients
    alone = subsample_patches(owner[:10], 4, seed=0)
    assert np.array_equal(alone, first[owner[first] == "A"])




def test_3d_models_train_in_channels_last_memory_and_2d_models_are_left_alone():
    """`grade.training.channels_last` (default on): the 3D convolutions' weights in channels-last 3D memory (faster
    on a CPU); a 2D model, whose 4D weights that format does not fit, trains as before."""
    patches, owner = _cohort()
    samples = torch.from_numpy(patches[:24])
    targets = torch.tensor([LABELS[p] for p in owner[:24]])
    for dim, expect_channels_last in (("3d", True), ("2d", False)):
        x = samples if dim == "3d" else torch.from_numpy(patch_samples(patches[:24], "2d", "central")[0])
        model, _ = train_model("cifa", dim, x, targets, owner[:24], replace(QUICK, iterations=2),
                               progress=lambda s: None)
        convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.Conv2d))]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last_3d) == expect_channels_last
                             for c in convs if c.weight.dim() == 5)
    model, _ = train_model("cifa", "3d", samples, targets, owner[:24],
                           replace(QUICK, iterations=2, channels_last=False), progress=lambda s: None)
    assert all(c.weight.is_contiguous() for c in model.modules() if isinstance(c, torch.nn.Conv3d))
