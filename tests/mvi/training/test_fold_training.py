"""Per-fold MVI training: fold isolation, resumption after a kill, determinism, predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cmdnet.data.clinical import ClinicalPreprocessor
from cmdnet.data.folds import make_folds
from cmdnet.mvi.losses import FocalLoss
from cmdnet.mvi.models import build_model
from cmdnet.mvi.training.data import FoldArrays
from cmdnet.mvi.training.loop import TrainConfig, fit
from cmdnet.mvi.training.fold import MviData, load_model, predict_fold, train_method_fold, train_teacher_fold
from cmdnet.mvi.objective import SupervisedTask

SHAPE = (4, 12, 12)
MODEL_CFG = {"width": 0.125, "feature_dim": 16, "norm": "batch",
             "cross_attention": {"n_tokens": 4, "softmax": "separate", "scaling": "sqrt_d", "residual": True}}
TRAIN_CFG = {"epochs": 3, "batch_size": 8, "lr": 3e-3, "augmentation": {"flip": True, "rotate_deg": 5.0,
                                                                          "intensity_jitter": 0.05}}
DISTILL_CFG = {"temperature": 2.0}


def tiny_cohort(n: int = 36, seed: int = 0) -> MviData:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    labels = pd.Series(np.arange(n) % 3, index=ids)
    images = rng.normal(size=(n, 2, *SHAPE)).astype(np.float32)
    images += labels.to_numpy()[:, None, None, None, None] * 0.5
    clinical = pd.DataFrame({"afp": labels.to_numpy() * 2.0 + rng.normal(size=n),
                             "albumin": rng.normal(40, 5, size=n),
                             "hbv": (rng.random(n) < 0.5).astype(float)}, index=pd.Index(ids, name="patient_id"))
    clinical.loc[ids[::7], "albumin"] = np.nan
    dictionary = pd.DataFrame({"column": ["afp", "albumin", "hbv"], "name": ["afp", "albumin", "hbv"],
                               "type": ["numeric", "numeric", "binary"], "unit": ["", "g/L", ""],
                               "min": [None, None, None], "max": [None, None, None],
                               "categories": ["", "", "no|yes"], "description": ["", "", ""]})
    return MviData(images, ("PRE", "HBP"), ids, labels, clinical, dictionary)


@pytest.fixture(scope="module")
def folds():
    data = tiny_cohort()
    return make_folds(data.labels, 3, seed=0)


def _train_pair(data, folds, tmp, fold=0):
    teacher = tmp / "teacher.pt"
    train_teacher_fold(data, folds, fold, "teacher", MODEL_CFG, TRAIN_CFG, seed=1, inner_fraction=0.25,
                       out_model=teacher, out_history=tmp / "teacher.csv", progress=lambda _: None)
    student = tmp / "ours.pt"
    train_method_fold(data, folds, fold, "ours", MODEL_CFG, TRAIN_CFG, DISTILL_CFG, seed=1, inner_fraction=0.25,
                      out_model=student, out_history=tmp / "ours.csv", teacher_path=teacher,
                      progress=lambda _: None)
    return teacher, student


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_test_fold_patients_cannot_influence_teacher_student_or_clinical_scaler(tmp_path, folds):
    data = tiny_cohort()
    test_ids = folds.loc[folds["fold"] == 0, "patient_id"].tolist()
    (tmp_path / "a").mkdir()
    teacher_a, student_a = _train_pair(data, folds, tmp_path / "a")

    # Replace everything known about the test patients (images and clinical values) with garbage.
    tampered = tiny_cohort()
    rows = [tampered.patient_ids.index(p) for p in test_ids]
    tampered.images[rows] = 1e3
    tampered.clinical.loc[test_ids, ["afp", "albumin"]] = 1e6
    (tmp_path / "b").mkdir()
    teacher_b, student_b = _train_pair(tampered, folds, tmp_path / "b")

    for a, b in [(teacher_a, teacher_b), (student_a, student_b)]:
        wa, wb = _weights(a), _weights(b)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f"{b.name} changed when only test patients changed"
    payload = torch.load(teacher_a, weights_only=True)
    assert not set(payload["train_ids"]) & set(test_ids)
    assert json.loads(payload["clinical_preprocessor"]) == json.loads(
        torch.load(teacher_b, weights_only=True)["clinical_preprocessor"])

    predictions = predict_fold(student_a, data, folds, 0)
    assert sorted(predictions["patient_id"]) == sorted(test_ids)
    assert np.allclose(predictions[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="fold"):
        predict_fold(student_a, data, folds, 1)


def test_student_model_file_needs_no_clinical_input(tmp_path, folds):
    data = tiny_cohort()
    _, student = _train_pair(data, folds, tmp_path)
    model, payload = load_model(student)
    assert payload["kind"] == "method" and "clinical_preprocessor" not in payload
    with torch.no_grad():
        out = model(torch.zeros(2, 2, *SHAPE))
    assert out.logits.shape == (2, 3)


def _supervised_fit(tmp_path, *, checkpoint, stop_after=None, epochs=4, channels_last=False):
    data = tiny_cohort()
    train = FoldArrays(data.images[:24], data.labels.to_numpy()[:24], data.patient_ids[:24])
    val = FoldArrays(data.images[24:], data.labels.to_numpy()[24:], data.patient_ids[24:])
    torch.manual_seed(3)
    model = build_model("student", in_shape_zyx=SHAPE, width=0.125, feature_dim=16,
                        ca_kwargs={"n_tokens": 4})
    task = SupervisedTask(model, FocalLoss(gamma=2.0), uses_clinical=False)
    cfg = TrainConfig.from_dict({**TRAIN_CFG, "epochs": epochs, "channels_last": channels_last})
    result = fit(task, train, val, cfg, seed=3, checkpoint_path=checkpoint, fingerprint="job",
                 progress=lambda _: None, stop_after_epoch=stop_after)
    return model, result


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_a_killed_run_resumes_to_the_same_model_as_an_uninterrupted_run(tmp_path, channels_last):
    model_full, result_full = _supervised_fit(tmp_path, checkpoint=tmp_path / "full.pt", channels_last=channels_last)
    with pytest.raises(InterruptedError):
        _supervised_fit(tmp_path, checkpoint=tmp_path / "killed.pt", stop_after=2, channels_last=channels_last)
    model_resumed, result_resumed = _supervised_fit(tmp_path, checkpoint=tmp_path / "killed.pt",
                                                    channels_last=channels_last)
    full, resumed = model_full.state_dict(), model_resumed.state_dict()
    assert all(torch.equal(full[k], resumed[k]) for k in full), "resumed run ended with other weights"
    pd.testing.assert_frame_equal(result_full.history.drop(columns="seconds"),
                                  result_resumed.history.drop(columns="seconds"))


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_same_seed_same_numbers_and_checkpoint_of_another_config_is_ignored(tmp_path, channels_last):
    model_a, result_a = _supervised_fit(tmp_path, checkpoint=None, epochs=2, channels_last=channels_last)
    model_b, _ = _supervised_fit(tmp_path, checkpoint=None, epochs=2, channels_last=channels_last)
    assert all(torch.equal(v, model_b.state_dict()[k]) for k, v in model_a.state_dict().items())
    assert result_a.best_epoch in (1, 2)
    assert result_a.history["val_auc"].notna().all()


def test_preprocessor_saved_with_teacher_reproduces_training_fold_statistics(tmp_path, folds):
    data = tiny_cohort()
    train_teacher_fold(data, folds, 1, "teacher", MODEL_CFG, {**TRAIN_CFG, "epochs": 1}, seed=0,
                       inner_fraction=0.25, out_model=tmp_path / "t.pt", out_history=tmp_path / "t.csv",
                       progress=lambda _: None)
    payload = torch.load(tmp_path / "t.pt", weights_only=True)
    saved = ClinicalPreprocessor.from_dict(json.loads(payload["clinical_preprocessor"]))
    train_ids = payload["train_ids"]
    refit = ClinicalPreprocessor(data.dictionary).fit(data.clinical.loc[train_ids])
    np.testing.assert_array_equal(saved.transform(data.clinical), refit.transform(data.clinical))
