"""Stage-wise training (Concat_2S): frozen earlier stages, per-stage selection, exact resumption, the fold job."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cmdnet.data.folds import make_partitions
from cmdnet.labels import MVI_CLASSES
from cmdnet.mvi.losses import TermContext
from cmdnet.mvi.models import Concat2S
from cmdnet.mvi.objective import SupervisedTask, build_objective
from cmdnet.mvi.training.data import FoldArrays
from cmdnet.mvi.training.loop import TrainConfig
from cmdnet.mvi.training.fold import load_model, predict_fold, train_method_fold
from cmdnet.mvi.training.stagewise import fit_stage, fit_stagewise, stage_checkpoint_path
from tests.mvi.training.test_fold_training import SHAPE, settings, tiny_cohort

TRAIN_CFG = settings("concat2s")["training"]


def _arrays():
    data = tiny_cohort()
    labels = data.labels.to_numpy()
    return (FoldArrays(data.images[:24], labels[:24], data.patient_ids[:24]),
            FoldArrays(data.images[24:], labels[24:], data.patient_ids[24:]))


def _model(seed=3):
    torch.manual_seed(seed)
    return Concat2S(in_shape_zyx=SHAPE, width=0.125, feature_dim=16, head_hidden=8)


def _cfg(epochs=3):
    return TrainConfig.from_dict({**TRAIN_CFG, "epochs": epochs})


def _objective(cfg, labels):
    return build_objective({"focal": {"weight": 1.0}}, TermContext(labels, len(MVI_CLASSES), cfg), "test")


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def _stagewise_fit(checkpoint, stop_after=None):
    train, val = _arrays()
    model = _model()
    task = SupervisedTask(model, _objective(_cfg(), train.labels), uses_clinical=False)
    result = fit_stagewise(task, train, val, _cfg(), seed=3, checkpoint_path=checkpoint,
                           fingerprint="job", progress=lambda _: None, stop_after=stop_after)
    return model, result


def test_stage2_leaves_stage1_weights_and_batchnorm_statistics_untouched():
    train, val = _arrays()
    model = _model()
    stage2 = model.training_stages()[-1]
    before_encoders, before_heads, before_head = _state(model.encoders), _state(model.phase_heads), _state(model.head)
    fit_stage(model, stage2, train, val, _cfg(2), _objective(_cfg(2), train.labels), seed=0, progress=lambda _: None)
    assert _same(before_encoders, model.encoders.state_dict()), "stage 2 changed a stage-1 encoder (or its BN stats)"
    assert _same(before_heads, model.phase_heads.state_dict()), "stage 2 changed a stage-1 head"
    assert not _same(before_head, model.head.state_dict()), "stage 2 did not train the fusion network"
    assert all(p.requires_grad for p in model.parameters()), "requires_grad flags were not restored"


def test_stage1_of_one_phase_leaves_the_other_phase_untouched():
    train, val = _arrays()
    model = _model()
    stage_pre = model.training_stages()[0]
    before_hbp, before_pre = _state(model.encoders["hbp"]), _state(model.encoders["pre"])
    fit_stage(model, stage_pre, train, val, _cfg(1), _objective(_cfg(1), train.labels), seed=0,
              progress=lambda _: None)
    assert _same(before_hbp, model.encoders["hbp"].state_dict()), "training PRE's stage 1 changed the HBP encoder"
    assert not _same(before_pre, model.encoders["pre"].state_dict())


def test_each_stage_is_selected_on_its_own_validation_auc(tmp_path):
    _, result = _stagewise_fit(tmp_path / "ckpt.pt")
    history = result.history
    assert list(history["stage"].unique()) == ["stage1_pre", "stage1_hbp", "stage2"]
    for stage, rows in history.groupby("stage"):
        assert rows["selected"].sum() == 1, f"{stage}: {rows['selected'].sum()} selected epochs"
        assert rows.loc[rows["selected"], "val_auc"].item() == rows["val_auc"].max(), f"{stage} not selected by AUC"
    assert result.best_epoch == history.loc[history["selected"] & (history["stage"] == "stage2"), "epoch"].item()
    assert not list(tmp_path.iterdir()), "stage checkpoints must be removed once every stage has finished"


@pytest.mark.parametrize("kill_at", [("stage1_hbp", 1), ("stage2", 2)], ids=["in_stage1_hbp", "in_stage2"])
def test_a_killed_stagewise_run_resumes_to_the_same_model_as_an_uninterrupted_run(tmp_path, kill_at):
    model_full, result_full = _stagewise_fit(tmp_path / "full.pt")
    with pytest.raises(InterruptedError):
        _stagewise_fit(tmp_path / "killed.pt", stop_after=kill_at)
    assert stage_checkpoint_path(tmp_path / "killed.pt", "stage1_pre").exists(), "finished stage's file is kept"
    model_resumed, result_resumed = _stagewise_fit(tmp_path / "killed.pt")
    full, resumed = model_full.state_dict(), model_resumed.state_dict()
    assert all(torch.equal(full[k], resumed[k]) for k in full), "resumed stage-wise run ended with other weights"
    pd.testing.assert_frame_equal(result_full.history.drop(columns="seconds"),
                                  result_resumed.history.drop(columns="seconds"))


def test_concat2s_fold_job_trains_stagewise_and_its_model_file_predicts(tmp_path):
    data = tiny_cohort()
    folds = make_partitions(data.labels, 3, 1, 0.25, seed=0)
    job = settings("concat2s", mvi={"model": {"concat2s": {"head_hidden": 8}}, "training": {"epochs": 2}})
    train_method_fold(data, folds, "concat2s", 0, 0, job, out_model=tmp_path / "m.pt", out_history=tmp_path / "h.csv",
                      checkpoint=tmp_path / "ckpt" / "fold0.pt", progress=lambda _: None)
    history = pd.read_csv(tmp_path / "h.csv")
    assert list(history["stage"].unique()) == ["stage1_pre", "stage1_hbp", "stage2"]
    assert history.groupby("stage")["selected"].sum().eq(1).all()
    model, payload = load_model(tmp_path / "m.pt")
    assert isinstance(model, Concat2S) and model.stagewise and payload["kwargs"]["head_hidden"] == 8
    predictions, _ = predict_fold(tmp_path / "m.pt", data, folds, progress=lambda _: None)
    assert predictions[["prob_0", "prob_1", "prob_2"]].sum(axis=1).round(5).eq(1).all()


def test_concat2s_joint_variant_is_trained_in_one_run_with_its_per_phase_losses(tmp_path):
    data = tiny_cohort()
    folds = make_partitions(data.labels, 3, 1, 0.25, seed=0)
    job = settings("concat2s", mvi={"model": {"concat2s": {"stagewise": False}}, "training": {"epochs": 1},
                                    "overrides": {"concat2s": {"objective": {"aux_focal": {"weight": 1.0}}}}})
    train_method_fold(data, folds, "concat2s", 0, 0, job, out_model=tmp_path / "m.pt", out_history=tmp_path / "h.csv",
                      progress=lambda _: None)
    history = pd.read_csv(tmp_path / "h.csv")
    assert "stage" not in history and (history["train_aux_focal"] > 0).all()
