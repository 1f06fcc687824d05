"""Focal loss: equality with cross entropy, a hand-computed value, per-class alpha, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmdnet.mvi.losses import FocalLoss, class_balanced_alpha


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gamma_zero_without_alpha_is_cross_entropy(reduction, dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 3, generator=g, dtype=dtype)
    target = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    ours = FocalLoss(gamma=0.0, reduction=reduction)(logits, target)
    ref = F.cross_entropy(logits, target, reduction=reduction)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


def test_hand_computed_two_sample_value():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([0, 2])
    alpha = [0.2, 0.3, 0.5]
    e = math.e
    p0 = e ** 2 / (e ** 2 + 2)  # sample 0, true class 0
    p1 = 1 / (1 + e + 1)  # sample 1, true class 2
    fl0 = -0.2 * (1 - p0) ** 2 * math.log(p0)
    fl1 = -0.5 * (1 - p1) ** 2 * math.log(p1)
    loss = FocalLoss(gamma=2.0, alpha=alpha, reduction="none")(logits, target)
    assert torch.allclose(loss, torch.tensor([fl0, fl1]), atol=1e-6, rtol=0)
    mean = FocalLoss(gamma=2.0, alpha=alpha)(logits, target)
    assert mean.item() == pytest.approx((fl0 + fl1) / 2, abs=1e-6)


def test_alpha_is_a_per_class_weight():
    logits = torch.tensor([[0.3, -0.2, 1.0], [0.5, 0.5, -1.0]])
    target = torch.tensor([2, 1])
    plain = FocalLoss(gamma=1.5, reduction="none")(logits, target)
    weighted = FocalLoss(gamma=1.5, alpha=[10.0, 3.0, 0.5], reduction="none")(logits, target)
    assert torch.allclose(weighted, plain * torch.tensor([0.5, 3.0]), atol=1e-6)


def test_focal_down_weights_easy_samples():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.2, 0.0]])  # easy, hard
    target = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, target, reduction="none")
    fl = FocalLoss(gamma=2.0, reduction="none")(logits, target)
    ratio = fl / ce
    assert (fl < ce).all() and ratio[0] < 1e-3 < ratio[1]


def test_gradients_flow():
    logits = torch.randn(4, 3, requires_grad=True)
    FocalLoss()(logits, torch.tensor([0, 1, 2, 0])).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_argument_validation():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss(reduction="batchmean")
    with pytest.raises(ValueError, match="non-negative"):
        FocalLoss(alpha=[1.0, -0.5, 1.0])
    loss = FocalLoss(alpha=[1.0, 1.0])
    with pytest.raises(ValueError, match="alpha has 2 weights but logits have 3"):
        loss(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        FocalLoss()(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="integer class"):
        FocalLoss()(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        FocalLoss()(torch.randn(3), torch.tensor([0, 1, 2]))


def test_class_balanced_alpha_inverse_frequency():
    labels = np.array([0, 0, 0, 1, 1, 2])  # counts 3, 2, 1
    mean_norm = class_balanced_alpha(labels, 3)
    assert torch.allclose(mean_norm, torch.tensor([6 / 11, 9 / 11, 18 / 11]), atol=1e-6)
    assert mean_norm.mean().item() == pytest.approx(1.0)
    sum_norm = class_balanced_alpha(torch.tensor(labels), 3, normalise="sum")
    assert torch.allclose(sum_norm, torch.tensor([2 / 11, 3 / 11, 6 / 11]), atol=1e-6)


def test_class_balanced_alpha_rejects_missing_class_and_bad_labels():
    with pytest.raises(ValueError, match=r"classes \[2\] have no training sample"):
        class_balanced_alpha([0, 1, 1], 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        class_balanced_alpha([0, 1, 3], 3)

