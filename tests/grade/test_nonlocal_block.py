"""The non-local block computes Eq. 1 (embedded Gaussian, softmax over j) and is live at initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from cmdnet.grade.nonlocal_block import NonLocalBlock


def _eq1_double_loop(block: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    """y_i = sum_j exp(theta_i . phi_j) g_j / sum_j exp(theta_i . phi_j), one position at a time."""
    with torch.no_grad():
        theta = block.theta(x).flatten(2)[0]   # (C', N)
        phi = block.phi(x).flatten(2)[0]
        g = block.g(x).flatten(2)[0]
    n = theta.shape[1]
    y = torch.zeros_like(g)
    for i in range(n):
        weights = [math.exp(float(theta[:, i] @ phi[:, j])) for j in range(n)]
        total = sum(weights)
        for j in range(n):
            y[:, i] += weights[j] / total * g[:, j]
    return y.reshape(1, -1, *x.shape[2:])


@pytest.mark.parametrize("dim, spatial", [(3, (2, 3, 2)), (2, (3, 4))])
def test_matches_direct_double_loop(dim, spatial):
    torch.manual_seed(0)
    block = NonLocalBlock(in_channels=3, inter_channels=4, dim=dim).double()
    x = torch.randn(1, 3, *spatial, dtype=torch.float64)
    expected = _eq1_double_loop(block, x)
    got = block(x)
    assert got.shape == (1, 4, *spatial)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 3])
def test_attention_rows_are_softmax_over_positions(dim):
    torch.manual_seed(1)
    block = NonLocalBlock(4, 4, dim)
    x = torch.randn(2, 4, *([3] * dim))
    att = block.attention(x)
    assert att.shape == (2, 3**dim, 3**dim)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 3**dim))


@pytest.mark.parametrize("dim", [2, 3])
def test_output_is_not_zero_at_initialisation(dim):
    """No residual connection, so no zero-init of the output: the feature must carry signal from step 0."""
    torch.manual_seed(2)
    block = NonLocalBlock(8, 64, dim)
    y = block(torch.randn(2, 8, *([4] * dim)))
    assert y.abs().mean() > 1e-3, "non-local output is (near) zero at initialisation"
    assert y.std() > 1e-3


def test_rejects_wrong_rank_input():
    with pytest.raises(ValueError, match="expects a 5-d input"):
        NonLocalBlock(2, 2, 3)(torch.randn(1, 2, 4, 4))


@pytest.mark.parametrize("dim, spatial", [(3, (4, 2, 4)), (2, (4, 6))])
def test_subsampling_trick_attends_to_max_pooled_keys(dim, spatial):
    """subsample=True: phi and g max-pooled by 2, every query position kept (Wang et al. Sec. 3.3)."""
    torch.manual_seed(3)
    block = NonLocalBlock(3, 4, dim, subsample=True).double()
    x = torch.randn(1, 3, *spatial, dtype=torch.float64)
    pool = torch.nn.functional.max_pool3d if dim == 3 else torch.nn.functional.max_pool2d
    with torch.no_grad():
        theta = block.theta(x).flatten(2)[0]
        phi = pool(block.phi(x), 2).flatten(2)[0]
        g = pool(block.g(x), 2).flatten(2)[0]
    weights = torch.softmax(theta.T @ phi, dim=1)          # (N, N / 2^dim)
    expected = (g @ weights.T).reshape(1, -1, *spatial)
    assert block.attention(x).shape == (1, theta.shape[1], theta.shape[1] // 2**dim)
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-12)
