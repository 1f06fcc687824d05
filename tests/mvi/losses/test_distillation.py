"""Distillation losses: direction, temperature scaling, batchmean, feature KD (Eq. 5), SP against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmdnet.mvi.losses import ClassDistillationLoss, FeatureDistillationLoss, HintonKDLoss, SimilarityPreservingLoss


def _softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _kl_np(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (p * np.log(p / q)).sum(axis=1)


def test_kd_of_identical_logits_is_zero():
    z = torch.randn(4, 3)
    assert ClassDistillationLoss(4.0)(z, z.clone()).abs().item() < 1e-7


def test_kd_direction_teacher_is_the_target():
    teacher = torch.tensor([[3.0, 0.0, -2.0]])
    student = torch.tensor([[0.0, 0.5, 0.0]])
    p, q = _softmax_np(teacher.numpy()), _softmax_np(student.numpy())
    ours = ClassDistillationLoss(1.0)(student, teacher).item()
    assert ours == pytest.approx(_kl_np(p, q)[0], abs=1e-6), "must be sum p log(p/q) with p = teacher"
    assert abs(_kl_np(p, q)[0] - _kl_np(q, p)[0]) > 0.1, "the case must be asymmetric to test direction"
    assert ours != pytest.approx(_kl_np(q, p)[0], abs=1e-3)


def test_kd_temperature_squared_scaling_and_batchmean():
    g = torch.Generator().manual_seed(1)
    teacher, student = 2 * torch.randn(5, 3, generator=g), 2 * torch.randn(5, 3, generator=g)
    t = 4.0
    p, q = _softmax_np(teacher.numpy() / t), _softmax_np(student.numpy() / t)
    per_sample = t ** 2 * _kl_np(p, q)
    loss = ClassDistillationLoss(t)
    assert loss(student, teacher).item() == pytest.approx(per_sample.mean(), abs=1e-6)
    ref = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
                   log_target=True) * t ** 2
    assert torch.allclose(loss(student, teacher), ref, atol=1e-6)
    none = ClassDistillationLoss(t, reduction="none")(student, teacher)
    assert np.allclose(none.numpy(), per_sample, atol=1e-6)
    assert ClassDistillationLoss(t, reduction="sum")(student, teacher).item() == pytest.approx(per_sample.sum(),
                                                                                               abs=1e-5)


def test_kd_teacher_detached_unless_joint():
    teacher = torch.randn(3, 3, requires_grad=True)
    student = torch.randn(3, 3, requires_grad=True)
    ClassDistillationLoss(2.0)(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None
    ClassDistillationLoss(2.0, detach_teacher=False)(student, teacher).backward()
    assert teacher.grad is not None


def test_kd_validation_and_hinton_alias():
    assert HintonKDLoss is ClassDistillationLoss
    with pytest.raises(ValueError, match="temperature"):
        ClassDistillationLoss(0.0)
    with pytest.raises(ValueError, match="differ in shape"):
        ClassDistillationLoss(1.0)(torch.randn(2, 3), torch.randn(2, 2))


def test_feature_kd_zero_for_equal_features():
    feats = {"hbp": torch.randn(2, 16), "pre": torch.randn(2, 16)}
    assert FeatureDistillationLoss()(feats, {k: v.clone() for k, v in feats.items()}).abs().item() < 1e-7


def test_feature_kd_matches_eq5_with_beta1():
    g = torch.Generator().manual_seed(2)
    s = {"hbp": torch.randn(3, 8, generator=g), "pre": torch.randn(3, 8, generator=g), "fused": torch.randn(3, 4)}
    t = {"hbp": torch.randn(3, 8, generator=g), "pre": torch.randn(3, 8, generator=g), "fused": torch.randn(3, 4)}
    kl_hbp = _kl_np(_softmax_np(t["hbp"].numpy()), _softmax_np(s["hbp"].numpy()))
    kl_pre = _kl_np(_softmax_np(t["pre"].numpy()), _softmax_np(s["pre"].numpy()))
    loss = FeatureDistillationLoss(beta1=0.5)(s, t)
    assert loss.item() == pytest.approx((kl_hbp + 0.5 * kl_pre).mean(), abs=1e-6)


def test_feature_kd_with_one_phase_and_mismatch():
    g = torch.Generator().manual_seed(3)
    s, t = {"hbp": torch.randn(2, 8, generator=g)}, {"hbp": torch.randn(2, 8, generator=g)}
    expected = _kl_np(_softmax_np(t["hbp"].numpy()), _softmax_np(s["hbp"].numpy())).mean()
    assert FeatureDistillationLoss(beta1=3.0)(s, t).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="same phases"):
        FeatureDistillationLoss()(s, {**t, "pre": torch.randn(2, 8)})
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        FeatureDistillationLoss()(s, {"hbp": torch.randn(2, 4)})


def test_similarity_preserving_against_numpy():
    g = torch.Generator().manual_seed(4)
    fs, ft = torch.randn(4, 6, 2, generator=g), torch.randn(4, 10, generator=g)

    def sim(a: np.ndarray) -> np.ndarray:
        a = a.reshape(len(a), -1).astype(np.float64)
        gram = a @ a.T
        return gram / np.linalg.norm(gram, axis=1, keepdims=True)

    diff = sim(ft.numpy()) - sim(fs.numpy())
    expected = np.linalg.norm(diff, "fro") ** 2 / 4 ** 2
    assert SimilarityPreservingLoss()(fs, ft).item() == pytest.approx(expected, rel=1e-5)
    assert SimilarityPreservingLoss(reduction="sum")(fs, ft).item() == pytest.approx(expected * 16, rel=1e-5)
    assert SimilarityPreservingLoss(reduction="none")(fs, ft).shape == (4, 4)
    assert SimilarityPreservingLoss()(ft, ft.clone()).item() < 1e-10
    with pytest.raises(ValueError, match="batch sizes differ"):
        SimilarityPreservingLoss()(fs, ft[:3])
