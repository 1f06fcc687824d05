"""Table-1 baselines and the model registry: shapes, gradients, image-only contract, method specifics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmdnet.mvi.losses import TermContext
from cmdnet.mvi.models import (
    CNN3D,
    MODEL_REGISTRY,
    Concat2S,
    ConcatNet,
    LSTMNet,
    M2Net,
    Student,
    Teacher,
    build_model,
)
from cmdnet.mvi.objective import build_objective
from cmdnet.mvi.training.loop import TrainConfig
from cmdnet.mvi.training.stagewise import StageTask, only_stage_trainable

SMALL = (12, 24, 24)
BASELINES = {"concat": ConcatNet, "cnn3d": CNN3D, "lstm": LSTMNet, "m2net": M2Net, "concat2s": Concat2S}


def _images(batch=2, phases=2, seed=0):
    return torch.randn(batch, phases, *SMALL, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_shapes_and_gradients(name):
    torch.manual_seed(0)
    model = build_model(name, in_shape_zyx=SMALL, width=0.125)
    assert isinstance(model, BASELINES[name])
    out = model(_images())
    assert out.logits.shape == (2, 3)
    assert "fused" in out.features
    out.logits.sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    if name == "concat2s":  # the per-phase heads are trained by their own (stage-1) losses only
        assert no_grad and all(n.startswith("phase_heads.") for n in no_grad), no_grad
    else:
        assert not no_grad, f"no gradient reached: {no_grad}"


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_refuse_clinical_input(name):
    model = build_model(name, in_shape_zyx=SMALL, width=0.125)
    with pytest.raises(TypeError, match="takes no clinical input"):
        model(_images(), torch.randn(2, 5))


def test_cnn3d_stacks_phases_as_channels():
    model = CNN3D(in_shape_zyx=SMALL, width=0.125)
    assert model.encoder.blocks[0].layers[0].in_channels == 2
    assert CNN3D(in_shape_zyx=SMALL, width=0.125, phases=("HBP",)).encoder.in_channels == 1


@pytest.mark.parametrize("share", [True, False])
def test_lstm_reads_phase_sequence_in_order(share):
    torch.manual_seed(0)
    model = LSTMNet(in_shape_zyx=SMALL, width=0.125, share_encoder=share, hidden_size=16, norm="group").eval()
    images = _images()
    with torch.no_grad():
        out = model(images)
        swapped = model(images.flip(1))
    assert out.features["sequence"].shape == (2, 2, 512)
    assert out.features["fused"].shape == (2, 16)
    assert torch.equal(out.features["pre"], out.features["sequence"][:, 0])
    if share:  # same encoder on swapped inputs: same vectors, reversed order; an LSTM is order-sensitive
        assert torch.allclose(swapped.features["sequence"], out.features["sequence"].flip(1), atol=1e-6)
        assert (swapped.logits - out.logits).abs().max() > 1e-4


def test_concat2s_joint_variant_exposes_per_phase_logits_and_trains_everything_from_the_final_logits():
    torch.manual_seed(0)
    model = Concat2S(in_shape_zyx=SMALL, width=0.125, stagewise=False)
    assert model.training_stages() == [], "the joint variant is trained in one run"
    out = model(_images())
    aux = Concat2S.auxiliary_logits(out)
    assert set(aux) == {"pre", "hbp"} and all(v.shape == (2, 3) for v in aux.values())
    sum(v.sum() for v in aux.values()).backward()
    assert model.phase_heads["pre"][-1].weight.grad is not None
    assert model.encoders["hbp"].fc.weight.grad is not None
    model.zero_grad(set_to_none=True)
    model(_images()).logits.sum().backward()
    assert model.encoders["pre"].fc.weight.grad is not None, "joint: the fusion loss must reach the encoders"


def test_concat2s_stage2_gradients_do_not_reach_stage1():
    model = Concat2S(in_shape_zyx=SMALL, width=0.125)
    assert model.stagewise, "Concat_2S trains stage-wise by default, as its paper"
    stage1_pre, stage1_hbp, stage2 = model.training_stages()
    objective = build_objective({"focal": {"weight": 1.0}}, TermContext(np.array([0, 1, 2]), 3, TrainConfig()), "t")
    task = StageTask(model, stage2, objective)
    with only_stage_trainable(model, stage2):
        task.train_mode()
        loss, _ = task.loss({"images": _images(), "labels": torch.tensor([0, 2])})
        loss.backward()
    assert all(p.grad is None for p in model.encoders.parameters()), "stage-2 loss reached a stage-1 encoder"
    assert all(p.grad is None for p in model.phase_heads.parameters()), "stage-2 loss reached a stage-1 head"
    assert all(p.grad is not None for p in model.head.parameters())
    assert not model.encoders["pre"].training, "stage-1 BatchNorm must stay in eval mode in stage 2"
    assert all(p.requires_grad for p in model.parameters()), "requires_grad flags were not restored"


def test_grad_cam_reaches_the_encoders_of_a_stagewise_concat2s():
    from cmdnet.product.saliency import grad_cam

    model = Concat2S(in_shape_zyx=SMALL, width=0.125).eval()
    cams = grad_cam(model, _images(batch=1), target=1, phases=("PRE", "HBP"))
    assert set(cams) == {"PRE", "HBP"} and all(c.shape == SMALL for c in cams.values())


def test_concat2s_stages_are_per_phase_networks_then_fusion_and_partition_the_parameters():
    model = Concat2S(in_shape_zyx=SMALL, width=0.125)
    stages = model.training_stages()
    assert [s.name for s in stages] == ["stage1_pre", "stage1_hbp", "stage2"]
    owner = {}
    for stage in stages:
        for m in stage.modules:
            for p in m.parameters():
                assert id(p) not in owner, f"a parameter is trained in both {owner[id(p)]} and {stage.name}"
                owner[id(p)] = stage.name
    untrained = [n for n, p in model.named_parameters() if id(p) not in owner]
    assert not untrained, f"parameters no stage trains: {untrained}"
    assert all(owner[id(p)] == "stage1_pre" for p in model.encoders["pre"].parameters())
    images = _images()
    assert stages[0].logits(images).shape == (2, 3)
    with torch.no_grad():
        model.eval()
        assert torch.equal(stages[-1].logits(images), model(images).logits), "stage 2 is the model's output"


def test_registry_builds_every_name():
    assert set(MODEL_REGISTRY) == {"teacher", "student", "concat", "cnn3d", "lstm", "m2net", "concat2s"}
    assert isinstance(build_model("teacher", n_clinical=3, in_shape_zyx=SMALL, width=0.125), Teacher)
    assert isinstance(build_model("student", in_shape_zyx=SMALL, width=0.125), Student)


def test_registry_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*cnn3d.*teacher"):
        build_model("resnet")
