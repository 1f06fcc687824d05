"""train_fold on a tiny synthetic patch set: output form, learning, determinism, input errors; cifa_spectra."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cmdnet.errors import CohortError, InputError
from cmdnet.grade import GRADE_METHODS, GradeTrainConfig, cifa_spectra, train_fold
from cmdnet.grade.train import patch_samples

PIDS = [f"P{i:02d}" for i in range(12)]
LABELS = {p: i % 2 for i, p in enumerate(PIDS)}
TRAIN, TEST = PIDS[:8], PIDS[8:]
METHODS = [(m, d) for d in ("3d", "2d") for m in GRADE_METHODS]
CONFIG = GradeTrainConfig(iterations=60, batch_size=8, lr=3e-3, decay_every=20, local_channels=(4, 8),
                          nonlocal_channels=8, nonlocal_inter_channels=8, common_dim=4, dcca_dim=4, seed=1)


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
    models: dict = {}
    logs: list[str] = []
    df = train_fold(patches, owner, LABELS, TRAIN, TEST, METHODS, CONFIG, progress=logs.append,
                    keep_models=models)
    return df, models, logs, patches, owner


def test_one_row_per_method_dim_and_test_patient(fold):
    df, _, logs, _, _ = fold
    assert list(df.columns) == ["method", "dim", "patient_id", "label", "prob_high"]
    assert len(df) == len(METHODS) * len(TEST)
    for (method, dim), rows in df.groupby(["method", "dim"]):
        assert sorted(rows["patient_id"]) == TEST, f"{method}/{dim} does not cover the test patients"
    assert set(zip(df["method"], df["dim"])) == set(METHODS)
    assert df["label"].tolist() == [LABELS[p] for p in df["patient_id"]]
    assert df["prob_high"].between(0, 1).all()
    last = [line for line in logs if line.startswith("cifa/3d: iteration 60/60")]
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


def test_cifa_spectra(fold):
    _, models, _, patches, _ = fold
    spectra = cifa_spectra(models[("cifa", "3d")], patches[:20])
    assert spectra["sv_common_1"].shape == (8,) and spectra["sv_individual_2"].shape == (8,)
    # J_i has rank <= k = 4 and A_i rank <= I_i - k = 4
    assert np.all(spectra["sv_common_1"][4:] < 1e-6 * spectra["sv_common_1"][0])
    assert np.all(spectra["sv_individual_1"][4:] < 1e-6 * spectra["sv_individual_1"][0])
    assert spectra["orthogonality_1"] < 1e-5 and spectra["orthogonality_2"] < 1e-5
    for i in (1, 2):
        assert 0 < spectra[f"energy_common_{i}"] < 1.5 and spectra[f"energy_residual_{i}"] < 0.2
    with pytest.raises(ValueError, match="needs a cifa"):
        cifa_spectra(models[("concat", "3d")], patches[:4])


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
