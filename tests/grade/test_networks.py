"""Every grading method builds for 2D and 3D; the non-local feature keeps position-wise information."""

from __future__ import annotations

import pytest
import torch

from cmdnet.grade.methods import GRADE_METHODS
from cmdnet.grade.networks import GradeOutput, NonLocalBranch, build_grade_model

TINY = dict(local_channels=(4, 6), nonlocal_channels=5, nonlocal_inter_channels=6, feature_dim=7, common_dim=2,
            dcca_dim=2)


@pytest.mark.parametrize("dim, shape", [("3d", (16, 16, 16)), ("2d", (16, 16))])
@pytest.mark.parametrize("method", sorted(GRADE_METHODS))
def test_builds_and_returns_logits(method, dim, shape):
    torch.manual_seed(0)
    model = build_grade_model(method, dim, **TINY).train()
    out = model(torch.randn(5, 1, *shape))
    assert isinstance(out, GradeOutput)
    assert out.logits.shape == (5, 2)
    assert out.aux_loss.shape == ()
    has_aux = GRADE_METHODS[method].aux is not None
    assert (out.aux_loss.item() != 0) == has_aux, f"{method}: unexpected auxiliary loss {out.aux_loss}"
    (out.logits.sum() + out.aux_loss).backward()
    assert all(p.grad is not None for p in model.parameters()), f"{method}/{dim}: a parameter got no gradient"
    model.eval()
    assert model(torch.randn(3, *shape)).logits.shape == (3, 2)   # channel axis may be omitted


def test_branches_used_by_each_method():
    for name, spec in GRADE_METHODS.items():
        model = build_grade_model(name, "3d", **TINY)
        assert (model.local_branch is not None) == spec.local, name
        assert (model.nonlocal_branch is not None) == spec.nonlocal_, name


def test_nonlocal_runs_on_pooled_maps():
    """The non-local operation sees the 8^3 maps after conv + pool, not the 16^3 patch."""
    model = build_grade_model("nonlocal", "3d", **TINY)
    seen = {}
    model.nonlocal_branch[3].register_forward_hook(lambda m, i, o: seen.update(shape=tuple(i[0].shape)))
    model.eval()(torch.randn(2, 1, 16, 16, 16))
    assert seen["shape"] == (2, 5, 8, 8, 8)


def test_branches_have_the_same_depth_and_readout():
    """stem conv + ReLU + pool, one feature layer (3x3x3 conv + ReLU vs the non-local block), the same
    flatten + linear projection: the two branches differ only in their feature layer."""
    model = build_grade_model("concat", "3d", **TINY)
    local = [type(m).__name__ for m in model.local_branch]
    nonlocal_ = [type(m).__name__ for m in model.nonlocal_branch]
    assert local == ["Conv3d", "ReLU", "MaxPool3d", "Conv3d", "ReLU", "Flatten", "Linear"], local
    assert nonlocal_ == ["Conv3d", "ReLU", "MaxPool3d", "NonLocalBlock", "Flatten", "Linear"], nonlocal_
    assert model.local_branch.out_features == model.nonlocal_branch.out_features == TINY["feature_dim"]


def _after_stem(branch: NonLocalBranch, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.Sequential(*list(branch)[3:])(x)   # the non-local block and the readout, on a stem output x


@pytest.mark.parametrize("dim", [2, 3])
def test_nonlocal_feature_is_not_a_function_of_the_attention_pooled_average_alone(dim):
    """Average pooling after the block gives W_g (sum_j a_j x_j) + b_g, a_j = mean_i A_ij: the same for every
    spatial permutation of the block's input. The default (flattened) readout must see the positions."""
    torch.manual_seed(1)
    pooled = NonLocalBranch(dim, 5, 6, readout="pooled").double().eval()
    flat = NonLocalBranch(dim, 5, 6, readout="flatten", feature_dim=7).double().eval()
    flat[3].load_state_dict(pooled[3].state_dict())
    x = torch.randn(2, 5, *([8] * dim), dtype=torch.float64)
    perm = torch.randperm(8 ** dim)
    x_perm = x.flatten(2)[:, :, perm].reshape(x.shape)

    block = pooled[3]
    attention = block.attention(x)                                   # (B, N, N)
    a = attention.mean(dim=1)                                         # (B, N): a_j = mean_i A_ij
    weighted = torch.einsum("bn,bcn->bc", a, x.flatten(2))            # sum_j a_j x_j
    w_g = block.g.weight.flatten(1)
    torch.testing.assert_close(_after_stem(pooled, x), weighted @ w_g.T + block.g.bias)   # the identity
    torch.testing.assert_close(_after_stem(pooled, x_perm), _after_stem(pooled, x))       # position-blind

    moved = (_after_stem(flat, x_perm) - _after_stem(flat, x)).abs().max()
    assert moved > 1e-3, "the flattened non-local feature ignores where the responses are"


def test_pooled_controls_use_the_pooled_readout():
    for name in ("nonlocal_pooled", "cifa_pooled"):
        branch = build_grade_model(name, "3d", **TINY).nonlocal_branch
        assert type(branch[4]).__name__ == "AdaptiveAvgPool3d" and branch.out_features == TINY["nonlocal_inter_channels"]
    assert type(build_grade_model("cifa", "3d", **TINY).nonlocal_branch[4]).__name__ == "Flatten"


def test_unknown_method_or_dim_is_named():
    with pytest.raises(ValueError, match="unknown grading method 'svm'"):
        build_grade_model("svm", "3d")
    with pytest.raises(ValueError, match="unknown dim '4d'"):
        build_grade_model("local", "4d")
    with pytest.raises(ValueError, match="k must satisfy"):
        build_grade_model("cifa", "3d", **{**TINY, "common_dim": 7})
