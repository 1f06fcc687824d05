"""Every grading method builds for 2D and 3D and returns (B, 2) logits plus its auxiliary loss."""

from __future__ import annotations

import pytest
import torch

from cmdnet.grade.networks import GRADE_METHODS, GradeOutput, build_grade_model

TINY = dict(local_channels=(4, 6), nonlocal_channels=5, nonlocal_inter_channels=6, common_dim=2, dcca_dim=2)
AUX = {"local": False, "nonlocal": False, "concat": False, "dcca": True, "cifa": True, "common": True,
       "individual": True}


@pytest.mark.parametrize("dim, shape", [("3d", (16, 16, 16)), ("2d", (16, 16))])
@pytest.mark.parametrize("method", sorted(GRADE_METHODS))
def test_builds_and_returns_logits(method, dim, shape):
    torch.manual_seed(0)
    model = build_grade_model(method, dim, **TINY).train()
    out = model(torch.randn(5, 1, *shape))
    assert isinstance(out, GradeOutput)
    assert out.logits.shape == (5, 2)
    assert out.aux_loss.shape == ()
    assert (out.aux_loss.item() != 0) == AUX[method], f"{method}: unexpected auxiliary loss {out.aux_loss}"
    (out.logits.sum() + out.aux_loss).backward()
    assert all(p.grad is not None for p in model.parameters()), f"{method}/{dim}: a parameter got no gradient"
    model.eval()
    assert model(torch.randn(3, *shape)).logits.shape == (3, 2)   # channel axis may be omitted


def test_branches_used_by_each_method():
    assert build_grade_model("local", "3d", **TINY).nonlocal_branch is None
    assert build_grade_model("nonlocal", "3d", **TINY).local_branch is None
    m = build_grade_model("cifa", "2d", **TINY)
    assert m.local_branch is not None and m.nonlocal_branch is not None


def test_nonlocal_runs_on_pooled_maps():
    """The non-local operation sees the 8^3 maps after conv + pool, not the 16^3 patch."""
    model = build_grade_model("nonlocal", "3d", **TINY)
    seen = {}
    block = model.nonlocal_branch[3]

    def record(module, inputs, output) -> None:
        seen["shape"] = tuple(inputs[0].shape)

    block.register_forward_hook(record)
    model.eval()(torch.randn(2, 1, 16, 16, 16))
    assert seen["shape"] == (2, 5, 8, 8, 8)


def test_unknown_method_or_dim_is_named():
    with pytest.raises(ValueError, match="unknown grading method 'svm'"):
        build_grade_model("svm", "3d")
    with pytest.raises(ValueError, match="unknown dim '4d'"):
        build_grade_model("local", "4d")
    with pytest.raises(ValueError, match="k must satisfy"):
        build_grade_model("cifa", "3d", **{**TINY, "common_dim": 6})
