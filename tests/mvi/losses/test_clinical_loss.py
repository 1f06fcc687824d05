"""L_clinical (ClinicalPredictionLoss): hand-computed value, reductions, gradient direction, validation."""

from __future__ import annotations

import pytest
import torch

from cmdnet.mvi.losses.clinical import ClinicalPredictionLoss


def test_hand_computed_value_is_per_sample_mean_square_averaged_over_the_batch():
    prediction = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    # sample 0: (1 + 0) / 2 = 0.5; sample 1: (4 + 4) / 2 = 4; mean 2.25
    assert ClinicalPredictionLoss()(prediction, target).item() == pytest.approx(2.25)
    assert ClinicalPredictionLoss(reduction="sum")(prediction, target).item() == pytest.approx(4.5)
    per_sample = ClinicalPredictionLoss(reduction="none")(prediction, target)
    assert torch.allclose(per_sample, torch.tensor([0.5, 4.0]))


def test_perfect_prediction_costs_nothing():
    c = torch.randn(4, 7)
    assert ClinicalPredictionLoss()(c.clone(), c).item() == 0.0


def test_gradient_reaches_the_prediction_and_never_the_target():
    prediction = torch.randn(3, 5, requires_grad=True)
    target = torch.randn(3, 5, requires_grad=True)
    ClinicalPredictionLoss()(prediction, target).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0, "no gradient reached the prediction"
    assert target.grad is None, "the clinical input (the target) must be detached"


def test_shape_mismatch_and_bad_reduction_are_refused():
    with pytest.raises(ValueError, match=r"\(B, F\)"):
        ClinicalPredictionLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        ClinicalPredictionLoss(reduction="batchmean")
