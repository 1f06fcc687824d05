"""The teacher uses its clinical input: every reading of Eq. 1 lets the clinical vector change the output and
lets gradients reach the clinical path; the L_clinical head and its training hook."""

from __future__ import annotations

import pytest
import torch

import numpy as np

from cmdnet.mvi.losses import FocalLoss, Step, TermContext
from cmdnet.mvi.losses.clinical import ClinicalPredictionLoss
from cmdnet.mvi.models.teacher_student import MRIClinicalFusionEncoder, Teacher
from cmdnet.mvi.objective import SupervisedTask, build_objective
from cmdnet.mvi.training.loop import TrainConfig

LABELS = torch.tensor([0, 1, 2, 0])


def _objective(terms: dict):
    context = TermContext(train_labels=np.array([0, 1, 2, 0]), n_classes=3, training=TrainConfig(focal_alpha=None))
    return build_objective(terms, context, "test")

SHAPE = (12, 24, 24)
N_CLIN = 6
READINGS = [("scale", "block_output", "chain"), ("scale", "pre_activation", "chain"),
            ("affine", "block_output", "chain"), ("affine", "pre_activation", "chain"),
            ("scale", "block_output", "parallel"), ("affine", "pre_activation", "parallel")]


def _images(batch=4, phases=2, seed=0):
    return torch.randn(batch, phases, *SHAPE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fusion,point,path", READINGS)
def test_changing_one_patients_clinical_vector_changes_that_patients_output_only(fusion, point, path):
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, fusion=fusion, fusion_point=point,
                    clinical_path=path, clinical_init="random", ca_kwargs={"n_tokens": 4}).eval()
    if fusion == "affine":  # the shift starts at zero; give it weights so the test sees it act
        for enc in model.encoders.values():
            for lin in enc.shifts:
                torch.nn.init.normal_(lin.weight, std=0.5)
    images, clinical = _images(), torch.randn(4, N_CLIN)
    changed = clinical.clone()
    changed[0] += 2.0
    with torch.no_grad():
        a, b = model(images, clinical), model(images, changed)
    assert (a.logits[0] - b.logits[0]).abs().max() > 1e-4, f"{fusion}/{point}: the clinical vector is ignored"
    assert torch.equal(a.logits[1:], b.logits[1:]), f"{fusion}/{point}: other patients' outputs moved"


@pytest.mark.parametrize("fusion,point,path", READINGS)
def test_gradients_of_the_class_loss_reach_every_clinical_layer(fusion, point, path):
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, fusion=fusion, fusion_point=point,
                    clinical_path=path, clinical_init="random", ca_kwargs={"n_tokens": 4})
    out = model(_images(), torch.randn(4, N_CLIN))
    FocalLoss(gamma=2.0)(out.logits, torch.tensor([0, 1, 2, 1])).backward()
    clinical_params = {n: p for n, p in model.named_parameters() if ".clinical." in n or ".shifts." in n}
    assert clinical_params, "the teacher has no clinical path"
    dead = [n for n, p in clinical_params.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"{fusion}/{point}: no gradient reached {dead}"


def test_default_teacher_starts_as_the_mri_only_path_and_its_first_step_reaches_every_clinical_weight():
    """Zero-initialised parallel clinical layers: scale 1 everywhere at the start, yet the first gradient
    reaches every clinical weight (each layer reads the clinical vector directly; a chain would not)."""
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, ca_kwargs={"n_tokens": 4})
    assert all(enc.clinical.clinical_path == "parallel" for enc in model.encoders.values())
    images, clinical = _images(), torch.randn(4, N_CLIN)
    scales = model.encoders["hbp"].clinical(clinical)
    assert all(torch.equal(s, torch.ones_like(s)) for s in scales), "the default clinical path must start neutral"
    out = model(images, clinical)
    FocalLoss(gamma=2.0)(out.logits, torch.tensor([0, 1, 2, 1])).backward()
    dead = [n for n, p in model.named_parameters() if ".clinical.fcs." in n and n.endswith("weight")
            and not p.grad.abs().sum() > 0]
    assert not dead, f"the first step leaves clinical weights without gradient: {dead}"


def test_parallel_clinical_layers_each_read_the_clinical_vector():
    from cmdnet.mvi.models.teacher_student import ClinicalScales
    layer = ClinicalScales(N_CLIN, (4, 8, 16, 16), "raw", "parallel", "random")
    c = torch.randn(3, N_CLIN)
    assert all(fc.in_features == N_CLIN for fc in layer.fcs)
    assert all(torch.allclose(s, fc(c)) for s, fc in zip(layer(c), layer.fcs))


def test_the_raw_product_with_zero_initialised_clinical_layers_is_refused():
    """C_k = a_k = 0 at the start would zero every block's output and every gradient: a teacher that never learns."""
    from cmdnet.mvi.models.teacher_student import ClinicalScales
    with pytest.raises(ValueError, match="clinical_init 'random' with 'raw'"):
        ClinicalScales(N_CLIN, (4, 8, 16, 16), "raw", "parallel", "zero")
    with pytest.raises(ValueError, match="cannot learn"):
        Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, clinical_scale="raw")


def test_affine_fusion_starts_as_the_papers_product():
    """Zero-initialised shifts: at initialisation `C * X + B` is Eq. 1's `C * X`."""
    torch.manual_seed(0)
    affine = MRIClinicalFusionEncoder(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16,
                                      fusion="affine").eval()
    scale = MRIClinicalFusionEncoder(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16).eval()
    scale.load_state_dict({k: v for k, v in affine.state_dict().items() if not k.startswith("shifts.")})
    x, c = _images(phases=1), torch.randn(4, N_CLIN)
    with torch.no_grad():
        assert torch.allclose(affine(x, c), scale(x, c), atol=1e-6)


@pytest.mark.parametrize("kind", ["scale", "affine"])
@pytest.mark.parametrize("point", ["block_output", "pre_activation"])
def test_neutral_clinical_layers_give_the_image_only_path(kind, point):
    """Scale 1 (1 + tanh of zero pre-activations) and shift 0 wherever the modulation enters: the fusion module is
    the MRI-only module."""
    torch.manual_seed(0)
    fusion = MRIClinicalFusionEncoder(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, fusion=kind,
                                      fusion_point=point).eval()
    for fc in fusion.clinical.fcs:
        torch.nn.init.zeros_(fc.weight)
        torch.nn.init.zeros_(fc.bias)
    x = _images(phases=1)
    with torch.no_grad():
        assert torch.allclose(fusion(x, torch.randn(4, N_CLIN)), fusion.image(x), atol=1e-6)


def test_unknown_fusion_options_are_refused():
    with pytest.raises(ValueError, match="fusion must be one of"):
        Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, fusion="concat")
    with pytest.raises(ValueError, match="fusion_point must be one of"):
        Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, fusion_point="input")
    with pytest.raises(ValueError, match="clinical_path must be one of"):
        Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, clinical_path="tree")
    with pytest.raises(ValueError, match="clinical_head must be one of"):
        Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, clinical_head="both")


def test_clinical_head_predicts_the_clinical_vector_from_the_fused_feature():
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, clinical_head="reconstruct",
                    ca_kwargs={"n_tokens": 4})
    clinical = torch.randn(4, N_CLIN)
    out = model(_images(), clinical)
    assert out.features["clinical_pred"].shape == (4, N_CLIN)
    loss, _ = _objective({"clinical": {"weight": 1.0}})(Step(LABELS, out, clinical=clinical))
    assert torch.allclose(loss, ClinicalPredictionLoss()(out.features["clinical_pred"], clinical))
    loss.backward()
    for part in ("head.", "clinical_head.", "encoders.hbp.image.", "encoders.pre.clinical."):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(part) or f".{part}" in f".{n}"]
        if part == "head.":
            assert all(g is None for g in grads), "L_clinical must not train the class head"
        else:
            assert grads and all(g is not None for g in grads), f"L_clinical's gradient does not reach {part}"


def test_the_clinical_term_without_a_head_says_which_setting_builds_one():
    model = Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, ca_kwargs={"n_tokens": 4})
    assert model.clinical_head is None
    out = model(_images(), torch.randn(4, N_CLIN))
    assert "clinical_pred" not in out.features and "clinical_logits" not in out.features
    with pytest.raises(ValueError, match="mvi.model.teacher.clinical_head"):
        _objective({"clinical": {"weight": 1.0}})(Step(LABELS, out, clinical=torch.randn(4, N_CLIN)))


def test_the_teacher_task_logs_the_weighted_clinical_term_beside_the_focal_loss():
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, clinical_head="reconstruct",
                    ca_kwargs={"n_tokens": 4}).eval()  # eval: the two forward passes below agree exactly
    batch = {"images": _images(), "clinical": torch.randn(4, N_CLIN), "labels": LABELS}
    task = SupervisedTask(model, _objective({"focal": {"weight": 1.0}, "clinical": {"weight": 0.25}}),
                          uses_clinical=True)
    total, terms = task.loss(batch)
    out = model(batch["images"], batch["clinical"])
    expected = 0.25 * ClinicalPredictionLoss()(out.features["clinical_pred"], batch["clinical"]).item()
    assert terms["clinical"] == pytest.approx(expected, rel=1e-5), "the logged term is the weighted L_clinical"
    assert total.item() == pytest.approx(terms["focal"] + terms["clinical"], rel=1e-5)


def test_label_reading_of_l_clinical_classifies_from_the_clinical_path_alone():
    """clinical_head='label': logits from the clinical activations only; images cannot change them."""
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=SHAPE, width=0.125, feature_dim=16, clinical_head="label",
                    clinical_init="random", ca_kwargs={"n_tokens": 4}).eval()
    clinical, labels = torch.randn(4, N_CLIN), torch.tensor([0, 1, 2, 1])
    out = model(_images(seed=0), clinical)
    other_images = model(_images(seed=1), clinical)
    assert out.features["clinical_logits"].shape == (4, 3)
    assert torch.equal(out.features["clinical_logits"], other_images.features["clinical_logits"]), \
        "the label reading must see the clinical path alone"
    objective = _objective({"clinical": {"weight": 1.0}})
    loss, _ = objective(Step(labels, out, clinical=clinical))
    assert torch.allclose(loss, objective.terms["clinical"].loss(out.features["clinical_logits"], labels))
    loss.backward()
    assert all(fc.weight.grad is not None and fc.weight.grad.abs().sum() > 0
               for enc in model.encoders.values() for fc in enc.clinical.fcs)
