"""Deep canonical correlation analysis loss (Andrew, Arora, Bilmes, Livescu, ICML 2013) and held-out CCA.

For two views H1 (m x o1) and H2 (m x o2) of the same m samples (rows = samples), centred:

    S12 = H1c^T H2c / (m - 1)
    S11 = H1c^T H1c / (m - 1) + r1 I,     S22 = H2c^T H2c / (m - 1) + r2 I
    T   = S11^(-1/2) S12 S22^(-1/2)
    corr(H1, H2) = sum of the singular values of T   (the total canonical correlation, all o components)

and the loss is -corr. The ridge terms r1, r2 > 0 keep S11, S22 invertible for small batches.

The whitening uses Cholesky factors S_ii = L_i L_i^T instead of the symmetric inverse square roots: T' =
L1^(-1) S12 L2^(-T) = O1^T T O2 with O_i orthogonal, so it has the same singular values, and its gradient has
no 1 / (lambda_a - lambda_b) eigen-gap terms (the `eigh` backward that blows up when two eigenvalues of a
batch covariance nearly coincide).

The correlations of one batch are biased upwards when the batch holds few distinct patients: m samples of
o-dim views always reach a total near o when m is close to o. `heldout_canonical_correlations` measures what
the learned views really share: the CCA directions fitted on training samples, the correlations computed on
held-out samples.
"""

from __future__ import annotations

import numpy as np
import torch


def _covariances(h1: torch.Tensor, h2: torch.Tensor, r1: float, r2: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m = h1.shape[0]
    h1c = h1 - h1.mean(dim=0, keepdim=True)
    h2c = h2 - h2.mean(dim=0, keepdim=True)
    s11 = h1c.T @ h1c / (m - 1) + r1 * torch.eye(h1.shape[1], dtype=h1.dtype, device=h1.device)
    s22 = h2c.T @ h2c / (m - 1) + r2 * torch.eye(h2.shape[1], dtype=h2.dtype, device=h2.device)
    return s11, s22, h1c.T @ h2c / (m - 1)


def _check(h1: torch.Tensor, h2: torch.Tensor, r1: float, r2: float) -> None:
    if h1.dim() != 2 or h2.dim() != 2 or h1.shape[0] != h2.shape[0]:
        raise ValueError(f"canonical_correlations: expected (m, o1), (m, o2), got {tuple(h1.shape)}, "
                         f"{tuple(h2.shape)}")
    if h1.shape[0] < 2:
        raise ValueError(f"canonical_correlations: needs at least 2 samples, got {h1.shape[0]}")
    if r1 <= 0 or r2 <= 0:
        raise ValueError(f"canonical_correlations: ridge terms must be positive, got r1={r1}, r2={r2}")


def canonical_correlations(h1: torch.Tensor, h2: torch.Tensor, r1: float = 1e-3, r2: float = 1e-3) -> torch.Tensor:
    """The min(o1, o2) regularised canonical correlations of views h1 (m, o1), h2 (m, o2), descending."""
    _check(h1, h2, r1, r2)
    s11, s22, s12 = _covariances(h1, h2, r1, r2)
    l1, l2 = torch.linalg.cholesky(s11), torch.linalg.cholesky(s22)
    left = torch.linalg.solve_triangular(l1, s12, upper=False)                 # L1^-1 S12
    t = torch.linalg.solve_triangular(l2, left.T, upper=False).T              # L1^-1 S12 L2^-T
    return torch.linalg.svdvals(t)


def dcca_loss(h1: torch.Tensor, h2: torch.Tensor, r1: float = 1e-3, r2: float = 1e-3) -> torch.Tensor:
    """Negative total canonical correlation of the two projected views (scalar, in [-min(o1, o2), 0])."""
    return -canonical_correlations(h1, h2, r1, r2).sum()


def heldout_canonical_correlations(train1: np.ndarray, train2: np.ndarray, test1: np.ndarray, test2: np.ndarray,
                                   r1: float = 1e-3, r2: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) canonical correlations, each (min(o1, o2),), in the training order.

    The CCA directions a_c, b_c (whitening by the training covariances with ridge r1, r2, then the SVD of T)
    are fitted on (train1, train2); the training values are the singular values of T, the held-out values the
    Pearson correlations of test1 a_c and test2 b_c (centred by the training means).
    """
    t1, t2 = torch.as_tensor(train1, dtype=torch.float64), torch.as_tensor(train2, dtype=torch.float64)
    _check(t1, t2, r1, r2)
    s11, s22, s12 = (s.numpy() for s in _covariances(t1, t2, r1, r2))
    w1 = np.linalg.inv(np.linalg.cholesky(s11))     # L1^-1: whitens view 1
    w2 = np.linalg.inv(np.linalg.cholesky(s22))
    u, sv, vt = np.linalg.svd(w1 @ s12 @ w2.T)
    c = min(u.shape[1], vt.shape[0])
    a, b = w1.T @ u[:, :c], w2.T @ vt[:c].T          # canonical directions, (o1, c) and (o2, c)
    p1 = (np.asarray(test1, dtype=np.float64) - train1.mean(axis=0)) @ a
    p2 = (np.asarray(test2, dtype=np.float64) - train2.mean(axis=0)) @ b
    p1, p2 = p1 - p1.mean(axis=0), p2 - p2.mean(axis=0)
    denom = np.sqrt((p1 ** 2).sum(axis=0) * (p2 ** 2).sum(axis=0))
    held = np.divide((p1 * p2).sum(axis=0), denom, out=np.zeros(c), where=denom > 0)
    return sv[:c], held
