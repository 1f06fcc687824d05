"""CIFA decomposition (Eqs. 4-6) and the DCCA loss against independent NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import fractional_matrix_power

from cmdnet.grade.dcca import (
    canonical_correlations,
    dcca_loss,
    heldout_canonical_correlations,
)
from cmdnet.grade.fusion import CIFAAnalysis, CIFAHead, ConcatHead, DCCAHead


def _head(i1=10, i2=7, k=3, mode="both", seed=0) -> CIFAHead:
    """A float64 head whose V_i are row-orthonormal to float64 precision (QR), so V_i and Q_i span R^I_i."""
    torch.manual_seed(seed)
    head = CIFAHead(i1, i2, k=k, mode=mode).double()
    with torch.no_grad():
        for v in (head.v1, head.v2):
            q, _ = torch.linalg.qr(v.T)
            v.copy_(q.T)
    return head


def test_q_rows_orthonormal_and_orthogonal_to_v():
    head = _head()
    with torch.no_grad():   # a generic (non-orthonormal) V: Q must still be V's complement
        head.v1.add_(0.3 * torch.randn_like(head.v1))
    for v in (head.v1, head.v2):
        q = CIFAHead.complement(v)
        assert q.shape == (v.shape[1] - v.shape[0], v.shape[1])
        torch.testing.assert_close(q @ q.T, torch.eye(q.shape[0], dtype=q.dtype), atol=1e-10, rtol=0)
        assert (v.detach() @ q.T).abs().max() < 1e-5, "rows of V_i and Q_i are not orthogonal"


def test_complement_is_constructed_not_learned():
    head = _head()
    assert CIFAHead.complement(head.v1).requires_grad is False
    names = {n for n, _ in head.named_parameters()}
    assert names == {"v1", "v2", "fc.weight", "fc.bias"}


def test_common_plus_individual_reconstructs_y():
    head = _head()
    torch.manual_seed(3)
    y1, y2 = torch.randn(5, 10, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    comp = head.components(y1, y2)
    torch.testing.assert_close(comp["J1"] + comp["A1"], y1)
    torch.testing.assert_close(comp["J2"] + comp["A2"], y2)
    # J and A are orthogonal per sample
    assert (comp["J1"] * comp["A1"]).sum(1).abs().max() < 1e-10


def test_objective_is_common_gap_when_constraints_hold():
    """Row-orthonormal V: every constraint term of Eq. 6 vanishes, leaving ||V1Y1 - V2Y2||^2 / B."""
    head = _head()
    torch.manual_seed(4)
    y1, y2 = torch.randn(6, 10, dtype=torch.float64), torch.randn(6, 7, dtype=torch.float64)
    expected = ((y1 @ head.v1.T - y2 @ head.v2.T) ** 2).sum() / 6
    torch.testing.assert_close(head.objective(y1, y2), expected)


def test_objective_penalises_trivial_v_zero():
    head = _head()
    y1, y2 = torch.randn(6, 10, dtype=torch.float64), torch.randn(6, 7, dtype=torch.float64)
    good = head.objective(y1, y2)
    with torch.no_grad():
        head.v1.mul_(1e-6)
        head.v2.mul_(1e-6)
    collapsed = head.objective(y1, y2)
    # the common-gap term alone would be ~0 here; the orthonormality penalty (2k = 6) must dominate it
    assert collapsed > 6 - 1e-3
    assert ((y1 @ head.v1.T - y2 @ head.v2.T) ** 2).sum() < 1e-9
    assert collapsed > 0 and good >= 0


@pytest.mark.parametrize("mode, width", [("both", 10 + 10 + 7), ("common", 10), ("individual", 10 + 7)])
def test_modes_feed_the_right_components(mode, width):
    head = _head(mode=mode)
    assert head.fc.in_features == width
    logits, aux = head.train()(torch.randn(4, 10, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64))
    assert logits.shape == (4, 2) and aux.item() > 0
    _, aux_eval = head.eval()(torch.randn(4, 10, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64))
    assert aux_eval.item() == 0


def _numpy_cca(h1: np.ndarray, h2: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """Canonical correlations by whitening each view (fractional matrix power) and an SVD."""
    m = h1.shape[0]
    a, b = h1 - h1.mean(0), h2 - h2.mean(0)
    s11 = a.T @ a / (m - 1) + r1 * np.eye(a.shape[1])
    s22 = b.T @ b / (m - 1) + r2 * np.eye(b.shape[1])
    s12 = a.T @ b / (m - 1)
    t = np.real(fractional_matrix_power(s11, -0.5)) @ s12 @ np.real(fractional_matrix_power(s22, -0.5))
    return np.linalg.svd(t, compute_uv=False)


def test_dcca_loss_matches_numpy_whitening():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 2))
    h1 = np.c_[z, rng.normal(size=(50, 2))] @ rng.normal(size=(4, 4))
    h2 = np.c_[z + 0.5 * rng.normal(size=(50, 2)), rng.normal(size=(50, 1))] @ rng.normal(size=(3, 3))
    r1, r2 = 1e-2, 5e-3
    expected = _numpy_cca(h1, h2, r1, r2)
    got = canonical_correlations(torch.from_numpy(h1), torch.from_numpy(h2), r1, r2).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    assert dcca_loss(torch.from_numpy(h1), torch.from_numpy(h2), r1, r2).item() == pytest.approx(-expected.sum())
    # two shared latent directions: two strong correlations, one weak
    assert expected[1] > 0.7 and expected[2] < 0.5


def test_dcca_without_ridge_matches_qr_cca():
    """Tiny ridge: the classical canonical correlations (singular values of Qa^T Qb of the centred views)."""
    rng = np.random.default_rng(1)
    h1, h2 = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    h2[:, 0] += h1[:, 1]
    qa, _ = np.linalg.qr(h1 - h1.mean(0))
    qb, _ = np.linalg.qr(h2 - h2.mean(0))
    expected = np.linalg.svd(qa.T @ qb, compute_uv=False)
    got = canonical_correlations(torch.from_numpy(h1), torch.from_numpy(h2), 1e-12, 1e-12).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-8)


def test_dcca_gradient_raises_correlation():
    torch.manual_seed(5)
    head = DCCAHead(6, 5, out_dim=2).double().train()
    y1 = torch.randn(64, 6, dtype=torch.float64)
    y2 = torch.cat([y1[:, :2] + 0.3 * torch.randn(64, 2, dtype=torch.float64),
                    torch.randn(64, 3, dtype=torch.float64)], dim=1)
    opt = torch.optim.SGD(head.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        _, aux = head(y1, y2)
        first = aux.item() if first is None else first
        opt.zero_grad()
        aux.backward()
        opt.step()
    assert aux.item() < first - 0.1, f"DCCA loss did not decrease: {first} -> {aux.item()}"


@pytest.mark.parametrize("mode", ["both", "common", "individual"])
def test_cifa_head_is_a_restricted_concat_head(mode):
    """CIFA logits = FC([y1, y2]) with W = [W_J V1^T V1 + W_A1 Q1^T Q1, W_A2 Q2^T Q2]; the y2 block annihilates
    V2's row space. If this changes, docs/grading.md ("CIFA head = restricted concat head") must change too."""
    head = _head(mode=mode).eval()
    torch.manual_seed(6)
    y1, y2 = torch.randn(9, 10, dtype=torch.float64), torch.randn(9, 7, dtype=torch.float64)
    weight, bias = head.concat_equivalent()
    concat = ConcatHead(10, 7).double().eval()
    with torch.no_grad():
        concat.fc.weight.copy_(weight)
        concat.fc.bias.copy_(bias)
    torch.testing.assert_close(head(y1, y2)[0], concat(y1, y2)[0], rtol=1e-10, atol=1e-12)
    hidden = (weight[:, 10:] @ head.v2.detach().T).abs().max()
    assert hidden < 1e-10, f"the CIFA head sees V2's common subspace of y2 (|W2 V2^T| = {hidden:.2e})"


def test_cifa_y1_block_is_unrestricted():
    """With V1 row-orthonormal, any y1 weight M is reachable: M = M P_V1 + M P_Q1."""
    head = _head(mode="both")
    m = torch.randn(2, 10, dtype=torch.float64)
    with torch.no_grad():
        head.fc.weight[:, :10] = m
        head.fc.weight[:, 10:20] = m
    weight, _ = head.concat_equivalent()
    torch.testing.assert_close(weight[:, :10], m)


def test_concat_aux_head_returns_the_cifa_objective_and_classifies_the_raw_features():
    torch.manual_seed(7)
    analysis = CIFAAnalysis(10, 7, k=3).double()
    head = ConcatHead(10, 7, analysis=analysis).double().train()
    y1, y2 = torch.randn(6, 10, dtype=torch.float64), torch.randn(6, 7, dtype=torch.float64)
    logits, aux = head(y1, y2)
    torch.testing.assert_close(aux, analysis.objective(y1, y2))
    torch.testing.assert_close(logits, head.fc(torch.cat([y1, y2], dim=1)))
    head.aux_enabled = False
    assert head(y1, y2)[1].item() == 0


def test_dcca_gradient_is_finite_for_identical_views():
    """Identical views: every canonical correlation is ~1 and the covariance eigenvalues coincide, where an
    eigh-based whitening's backward divides by eigenvalue gaps."""
    torch.manual_seed(8)
    h = torch.randn(40, 4, dtype=torch.float64)
    h1 = torch.cat([h, h[:, :1]], dim=1).requires_grad_()   # a repeated column: degenerate spectrum
    h2 = torch.cat([h, h[:, :1]], dim=1).requires_grad_()
    loss = dcca_loss(h1, h2, 1e-3, 1e-3)
    loss.backward()
    assert torch.isfinite(h1.grad).all() and torch.isfinite(h2.grad).all()


def test_heldout_correlation_exposes_batch_noise():
    """Independent views: the in-sample correlations of a small sample are large, the held-out ones near 0;
    a shared latent direction stays correlated out of sample."""
    rng = np.random.default_rng(9)
    a_train, b_train = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    a_test, b_test = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    train, held = heldout_canonical_correlations(a_train, b_train, a_test, b_test)
    assert train[0] > 0.7 and np.abs(held).max() < 0.3, (train, held)

    z_train, z_test = rng.normal(size=(200, 1)), rng.normal(size=(500, 1))
    a_train = np.c_[z_train, rng.normal(size=(200, 2))]
    b_train = np.c_[z_train + 0.3 * rng.normal(size=(200, 1)), rng.normal(size=(200, 2))]
    a_test = np.c_[z_test, rng.normal(size=(500, 2))]
    b_test = np.c_[z_test + 0.3 * rng.normal(size=(500, 1)), rng.normal(size=(500, 2))]
    train, held = heldout_canonical_correlations(a_train, b_train, a_test, b_test)
    assert held[0] > 0.9 and abs(held[1]) < 0.2, (train, held)
