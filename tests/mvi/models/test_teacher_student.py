"""CMD-Net modules: shapes, gradients, clinical dependence, CA behaviour, ablation variants."""

from __future__ import annotations

import math

import pytest
import torch

from cmdnet.mvi.models import (
    ClinicalScales, CrossAttention, MRIEncoder, ModelOutput, Student, Teacher,
)

SMALL = (12, 24, 24)
N_CLIN = 5


def _images(shape=SMALL, batch=2, phases=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, phases, *shape, generator=g)


def _assert_all_params_get_gradients(model: torch.nn.Module) -> None:
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached: {missing}"
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert len(zero) <= len(list(model.parameters())) // 10, f"all-zero gradients: {zero}"


@pytest.mark.parametrize("shape", [SMALL, (16, 32, 32)])
def test_teacher_shapes_and_gradients(shape):
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=shape, width=0.125)
    out = model(_images(shape), torch.randn(2, N_CLIN))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 3)
    assert out.features["hbp"].shape == (2, 512) and out.features["pre"].shape == (2, 512)
    assert out.features["fused"].shape == (2, 1024)
    out.logits.sum().backward()
    _assert_all_params_get_gradients(model)


@pytest.mark.parametrize("shape", [SMALL, (16, 32, 32)])
def test_student_shapes_and_gradients(shape):
    torch.manual_seed(0)
    model = Student(in_shape_zyx=shape, width=0.125)
    out = model(_images(shape))
    assert out.logits.shape == (2, 3)
    stages = {f"{p}_stage{k}" for p in ("hbp", "pre") for k in range(1, 5)}
    assert set(out.features) == {"hbp", "pre", "fused"} | stages
    assert out.features["pre_stage1"].shape[1] == 8 and out.features["pre_stage4"].shape[1] == 32
    out.logits.sum().backward()
    _assert_all_params_get_gradients(model)


def test_student_runs_at_paper_crop_size():
    model = Student(in_shape_zyx=(32, 64, 64), width=0.125).eval()
    with torch.no_grad():
        assert model(_images((32, 64, 64), batch=1)).logits.shape == (1, 3)


def test_encoder_pools_only_axes_longer_than_one():
    enc = MRIEncoder(in_shape_zyx=(2, 24, 24), width=0.125).eval()
    maps = enc.feature_maps(torch.randn(1, 1, 2, 24, 24))
    assert maps.shape == (1, 32, 1, 3, 3), "z=2 pools once to 1 and then stays 1; 24 -> 12 -> 6 -> 3"


def test_encoder_width_scales_channels_but_not_feature_dim():
    enc = MRIEncoder(in_shape_zyx=SMALL, width=0.5)
    assert enc.channels == (32, 64, 128, 128)
    assert enc.fc.out_features == 512
    assert MRIEncoder(in_shape_zyx=SMALL).channels == (64, 128, 256, 256)


@pytest.mark.parametrize("norm", ["instance", "group"])
def test_norm_options(norm):
    model = Student(in_shape_zyx=SMALL, width=0.125, norm=norm)
    assert model(_images(batch=1)).logits.shape == (1, 3)


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="norm must be one of"):
        MRIEncoder(in_shape_zyx=SMALL, norm="layer")


def test_teacher_output_depends_on_clinical_vector():
    """Changing sample 0's clinical vector changes sample 0's logits only (GroupNorm: no batch coupling).

    The default teacher starts with its clinical layers at zero (every scale 1: the MRI-only path), so the
    clinical vector matters once one training step has moved them."""
    torch.manual_seed(0)
    model = Teacher(N_CLIN, in_shape_zyx=SMALL, width=0.125, norm="group")
    images = _images()
    clin = torch.randn(2, N_CLIN)
    changed = clin.clone()
    changed[0] += 1.0
    with torch.no_grad():
        start_a, start_b = model.eval()(images, clin), model(images, changed)
    assert torch.equal(start_a.logits, start_b.logits), "a zero-initialised clinical path must start neutral"
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()(images, clin).logits[:, 0].sum().backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        a = model(images, clin)
        b = model(images, changed)
        a2 = model(images, clin)
    assert torch.equal(a.logits, a2.logits), "the teacher must be deterministic in eval mode"
    assert (a.logits[0] - b.logits[0]).abs().max() > 1e-4, "changing the clinical vector left logits unchanged"
    assert torch.equal(a.logits[1], b.logits[1]), "sample 1's logits moved although only sample 0 changed"
    assert not torch.allclose(a.features["hbp"][0], b.features["hbp"][0], rtol=0, atol=1e-6)


def test_teacher_requires_a_valid_clinical_vector():
    model = Teacher(N_CLIN, in_shape_zyx=SMALL, width=0.125)
    with pytest.raises(TypeError, match="needs the clinical vector"):
        model(_images())
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        model(_images(), torch.randn(2, 4))
    bad = torch.randn(2, N_CLIN)
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(_images(), bad)


def test_student_refuses_clinical_input():
    model = Student(in_shape_zyx=SMALL, width=0.125)
    with pytest.raises(TypeError, match="takes no clinical input"):
        model(_images(), torch.randn(2, N_CLIN))


@pytest.mark.parametrize("mode,low,high", [("one_plus_tanh", 0.0, 2.0), ("sigmoid2", 0.0, 2.0)])
def test_clinical_scales_are_positive_and_bounded(mode, low, high):
    scales = ClinicalScales(N_CLIN, (4, 8, 16, 16), mode)(100 * torch.randn(3, N_CLIN))
    assert [s.shape for s in scales] == [(3, 4), (3, 8), (3, 16), (3, 16)]
    assert all(((s >= low) & (s <= high)).all() for s in scales)


def test_clinical_scales_raw_is_the_linear_output():
    layer = ClinicalScales(N_CLIN, (4, 8, 16, 16), "raw", clinical_init="random")
    c = torch.randn(3, N_CLIN)
    assert torch.allclose(layer(c)[0], layer.fcs[0](c))


def test_ca_off_is_identity_path():
    torch.manual_seed(0)
    off = Student(in_shape_zyx=SMALL, width=0.125, use_ca=False).eval()
    assert off.ca is None
    with torch.no_grad():
        out = off(_images())
    assert torch.equal(out.features["fused"], torch.cat([out.features["hbp"], out.features["pre"]], dim=1))
    x, y = torch.randn(2, 512), torch.randn(2, 512)
    xo, yo = CrossAttention(512, enabled=False)(x, y)
    assert xo is x and yo is y
    assert not list(CrossAttention(512, enabled=False).parameters())


def test_ca_on_refines_the_features():
    torch.manual_seed(0)
    model = Student(in_shape_zyx=SMALL, width=0.125).eval()
    with torch.no_grad():
        out = model(_images())
    plain = torch.cat([out.features["hbp"], out.features["pre"]], dim=1)
    assert out.features["fused"].shape == plain.shape
    assert not torch.allclose(out.features["fused"], plain, atol=1e-4)


def _manual_ca(ca: CrossAttention, x, y, softmax: bool):
    tx, ty = x.reshape(len(x), ca.n_tokens, -1), y.reshape(len(y), ca.n_tokens, -1)
    qx, kx, vx = ca.q_x(tx), ca.k_x(tx), ca.v_x(tx)
    qy, ky, vy = ca.q_y(ty), ca.k_y(ty), ca.v_y(ty)
    s = 1 / math.sqrt(ca.token_dim)
    a = (lambda m: torch.softmax(m, -1)) if softmax else (lambda m: m)
    x_hat = a(qx @ kx.mT * s) @ vx + a(qx @ ky.mT * s) @ vy  # Eq. 2
    y_hat = a(qy @ kx.mT * s) @ vx + a(qy @ ky.mT * s) @ vy  # Eq. 3
    return x_hat.reshape(x.shape), y_hat.reshape(y.shape)


@pytest.mark.parametrize("softmax", ["separate", "none"])
def test_ca_matches_eqs_2_and_3(softmax):
    torch.manual_seed(0)
    ca = CrossAttention(16, n_tokens=4, softmax=softmax, residual=False)
    x, y = torch.randn(2, 16), torch.randn(2, 16)
    ex, ey = _manual_ca(ca, x, y, softmax=softmax == "separate")
    gx, gy = ca(x, y)
    assert torch.allclose(gx, ex, atol=1e-6) and torch.allclose(gy, ey, atol=1e-6)
    with_residual = CrossAttention(16, n_tokens=4, softmax=softmax, residual=True)
    with_residual.load_state_dict(ca.state_dict())
    hx, hy = with_residual(x, y)
    assert torch.allclose(hx, x + ex, atol=1e-6) and torch.allclose(hy, y + ey, atol=1e-6)


def test_ca_joint_softmax_is_a_convex_combination_of_values():
    torch.manual_seed(0)
    ca = CrossAttention(8, n_tokens=2, softmax="joint", residual=False)
    for lin in (ca.v_x, ca.v_y):  # identity values equal to 1: a convex combination of ones is one
        torch.nn.init.zeros_(lin.weight)
        torch.nn.init.ones_(lin.bias)
    x_hat, y_hat = ca(torch.randn(3, 8), torch.randn(3, 8))
    assert torch.allclose(x_hat, torch.ones(3, 8), atol=1e-6) and torch.allclose(y_hat, torch.ones(3, 8), atol=1e-6)


def test_ca_accepts_token_sequences_of_different_lengths():
    ca = CrossAttention(32, n_tokens=4)
    x, y = torch.randn(2, 10, 8), torch.randn(2, 6, 8)
    xo, yo = ca(x, y)
    assert xo.shape == x.shape and yo.shape == y.shape


def test_ca_rejects_bad_configuration():
    with pytest.raises(ValueError, match="divisor"):
        CrossAttention(512, n_tokens=7)
    with pytest.raises(ValueError, match="softmax"):
        CrossAttention(512, softmax="sparse")


@pytest.mark.parametrize("phase", ["PRE", "HBP"])
def test_single_phase_variants(phase):
    torch.manual_seed(0)
    teacher = Teacher(N_CLIN, in_shape_zyx=SMALL, width=0.125, phases=(phase,))
    student = Student(in_shape_zyx=SMALL, width=0.125, phases=(phase,))
    assert teacher.ca is None and student.ca is None
    t_out = teacher(_images(phases=1), torch.randn(2, N_CLIN))
    s_out = student(_images(phases=1))
    for out in (t_out, s_out):
        assert set(out.features) == {phase.lower(), "fused"} | {f"{phase.lower()}_stage{k}" for k in range(1, 5)}
        assert out.logits.shape == (2, 3)
        assert torch.equal(out.features["fused"], out.features[phase.lower()])


def test_phase_and_shape_validation():
    with pytest.raises(ValueError, match="order"):
        Student(in_shape_zyx=SMALL, phases=("HBP", "PRE"))
    with pytest.raises(ValueError, match="subset"):
        Student(in_shape_zyx=SMALL, phases=("AP",))
    model = Student(in_shape_zyx=SMALL, width=0.125)
    with pytest.raises(ValueError, match="phase channels"):
        model(_images(phases=1))
    with pytest.raises(ValueError, match="in_shape_zyx"):
        model(_images((16, 32, 32)))
