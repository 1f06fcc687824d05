"""Per-fold MVI training: fold isolation, resumption after a kill, determinism, predictions, the objective."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cmdnet.config import deep_merge, default_config
from cmdnet.data.clinical import ClinicalPreprocessor
from cmdnet.data.folds import make_partitions
from cmdnet.labels import MVI_CLASSES
from cmdnet.mvi.losses import TermContext
from cmdnet.mvi.models import build_model
from cmdnet.mvi.objective import SupervisedTask, build_objective
from cmdnet.mvi.settings import job_settings
from cmdnet.mvi.training.data import FoldArrays
from cmdnet.mvi.training.fold import MviData, load_model, predict_fold, train_method_fold, train_teacher_fold
from cmdnet.mvi.training.loop import TrainConfig, fit
from tests.mvi.training.clinical_tables import DICTIONARY, clinical_table

SHAPE = (4, 12, 12)
TEST_CONFIG = {"seed": 1, "folds": {"inner_validation_fraction": 0.25},
               "mvi": {"model": {"width": 0.125, "feature_dim": 16, "cross_attention": {"n_tokens": 4}},
                       "training": {"epochs": 3, "batch_size": 8, "lr": 3e-3,
                                    "augmentation": {"flip": True, "rotate_deg": 5.0, "intensity_jitter": 0.05}},
                       "objectives": {"cmdnet": {"class_kd": {"temperature": 2.0}}}}}


def settings(name: str, **changes) -> dict:
    """The job settings of `name` under the test configuration (config.yaml with TEST_CONFIG and `changes`)."""
    return job_settings(deep_merge(deep_merge(default_config(), TEST_CONFIG), changes), name)


def tiny_cohort(n: int = 36, seed: int = 0) -> MviData:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    labels = pd.Series(np.arange(n) % 3, index=ids)
    images = rng.normal(size=(n, 2, *SHAPE)).astype(np.float32)
    images += labels.to_numpy()[:, None, None, None, None] * 0.5
    clinical = clinical_table(labels, rng, afp_effect=2.0)
    return MviData(images, ("PRE", "HBP"), ids, labels, clinical, DICTIONARY)


@pytest.fixture(scope="module")
def folds():
    data = tiny_cohort()
    return make_partitions(data.labels, 3, 1, 0.25, seed=0)


def _train_pair(data, folds, tmp, fold=0, **changes):
    teacher = tmp / "teacher.pt"
    train_teacher_fold(data, folds, "teacher", 0, fold, settings("teacher", **changes), out_model=teacher,
                       out_history=tmp / "teacher.csv", progress=lambda _: None)
    student = tmp / "ours.pt"
    train_method_fold(data, folds, "ours", 0, fold, settings("ours", **changes), out_model=student,
                      out_history=tmp / "ours.csv", teacher=teacher, progress=lambda _: None)
    return teacher, student


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_test_fold_patients_cannot_influence_teacher_student_or_clinical_scaler(tmp_path, folds):
    data = tiny_cohort()
    test_ids = folds.folds.loc[folds.folds["fold"] == 0, "patient_id"].tolist()
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

    predictions, validation = predict_fold(student_a, data, folds, progress=lambda _: None)
    assert sorted(predictions["patient_id"]) == sorted(test_ids)
    assert (predictions["repeat"] == 0).all() and (predictions["fold"] == 0).all()
    assert np.allclose(predictions[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0, atol=1e-5)
    assert not set(validation["patient_id"]) & set(test_ids), "thresholds must come from the training patients"
    assert sorted(validation["patient_id"]) == sorted(payload["val_ids"])


def test_student_model_file_needs_no_clinical_input(tmp_path, folds):
    data = tiny_cohort()
    _, student = _train_pair(data, folds, tmp_path)
    model, payload = load_model(student)
    assert payload["kind"] == "method" and "clinical_preprocessor" not in payload
    with torch.no_grad():
        out = model(torch.zeros(2, 2, *SHAPE))
    assert out.logits.shape == (2, 3)


def _supervised_fit(tmp_path, *, checkpoint, stop_after=None, epochs=4, channels_last=False, precision="fp32"):
    data = tiny_cohort()
    train = FoldArrays(data.images[:24], data.labels.to_numpy()[:24], data.patient_ids[:24])
    val = FoldArrays(data.images[24:], data.labels.to_numpy()[24:], data.patient_ids[24:])
    torch.manual_seed(3)
    model = build_model("student", in_shape_zyx=SHAPE, width=0.125, feature_dim=16,
                        ca_kwargs={"n_tokens": 4})
    job = settings("s_pre_hbp", mvi={"training": {"epochs": epochs, "channels_last": channels_last,
                                                  "precision": precision}})
    cfg = TrainConfig.from_dict(job["training"])
    objective = build_objective(job["objective"], TermContext(train.labels, len(MVI_CLASSES), cfg), "test")
    task = SupervisedTask(model, objective, uses_clinical=False)
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
    train_teacher_fold(data, folds, "teacher", 0, 1, settings("teacher", mvi={"training": {"epochs": 1}}),
                       out_model=tmp_path / "t.pt", out_history=tmp_path / "t.csv", progress=lambda _: None)
    payload = torch.load(tmp_path / "t.pt", weights_only=True)
    saved = ClinicalPreprocessor.from_dict(json.loads(payload["clinical_preprocessor"]))
    train_ids = payload["train_ids"]
    refit = ClinicalPreprocessor(data.dictionary).fit(data.clinical.loc[train_ids])
    np.testing.assert_array_equal(saved.transform(data.clinical), refit.transform(data.clinical))


def test_teacher_and_student_start_from_independent_weights(tmp_path, folds):
    data = tiny_cohort()
    teacher, student = _train_pair(data, folds, tmp_path, mvi={"training": {"epochs": 1, "lr": 1e-12}})
    t, s = _weights(teacher), _weights(student)
    shared = [k for k in s if k.startswith("encoders.pre.blocks.0.layers.0") and k.replace("encoders.pre.",
              "encoders.pre.image.") in t]
    assert shared, "the test must compare the first convolution of both PRE encoders"
    for key in shared:
        assert not torch.allclose(s[key], t[key.replace("encoders.pre.", "encoders.pre.image.")]), \
            "the student's PRE encoder started as a copy of the teacher's"


def test_every_weighted_term_is_logged_and_they_add_up_to_the_loss(tmp_path, folds):
    data = tiny_cohort()
    _train_pair(data, folds, tmp_path, mvi={"training": {"epochs": 2}})
    history = pd.read_csv(tmp_path / "ours.csv")
    terms = ["train_focal", "train_class_kd", "train_feature_kd"]
    assert set(terms) <= set(history.columns)
    assert (history[terms] > 0).all().all(), "each term of the objective must act"
    np.testing.assert_allclose(history[terms].sum(axis=1), history["train_loss"], rtol=1e-5)


def test_similarity_preserving_term_compares_every_stage_of_both_encoders(tmp_path, folds):
    data = tiny_cohort()
    teacher, _ = _train_pair(data, folds, tmp_path, mvi={"training": {"epochs": 1}})
    train_method_fold(data, folds, "sp_ours", 0, 0, settings("sp_ours", mvi={"training": {"epochs": 1}}),
                      out_model=tmp_path / "sp.pt", out_history=tmp_path / "sp.csv", teacher=teacher,
                      progress=lambda _: None)
    history = pd.read_csv(tmp_path / "sp.csv")
    assert history.loc[0, "train_sp_kd"] >= 0.05 * history.loc[0, "train_focal"], \
        "at Tung & Mori's operating point the SP term must not vanish beside the supervised term"


def test_joint_distillation_trains_the_teacher_alongside_the_student(tmp_path, folds):
    data = tiny_cohort()
    joint = settings("ours", mvi={"distillation": {"mode": "joint"}, "training": {"epochs": 2}})
    assert "teacher_objective" in joint
    train_method_fold(data, folds, "ours", 0, 0, joint, out_model=tmp_path / "ours.pt",
                      out_history=tmp_path / "ours.csv", progress=lambda _: None)
    history = pd.read_csv(tmp_path / "ours.csv")
    assert "train_teacher_focal" in history.columns and (history["train_teacher_focal"] > 0).all()
    np.testing.assert_allclose(history.filter(regex="^train_(?!loss)").sum(axis=1), history["train_loss"],
                               rtol=1e-5)


def test_mixed_precision_with_loss_scaling_runs_the_same_code_path_on_the_cpu(tmp_path):
    _, fp32 = _supervised_fit(tmp_path, checkpoint=None, epochs=1)
    _, fp16 = _supervised_fit(tmp_path, checkpoint=None, epochs=1, precision="fp16")
    assert np.isfinite(fp16.history["train_loss"]).all()
    assert abs(fp16.history.loc[0, "train_loss"] - fp32.history.loc[0, "train_loss"]) < 0.1
