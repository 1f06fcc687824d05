"""Deep canonical correlation analysis loss (Andrew, Arora, Bilmes, Livescu, ICML 2013).

For two views H1 (m x o1) and H2 (m x o2) of the same m samples (rows = samples), centred:

    S12 = H1c^T H2c / (m - 1)
    S11 = H1c^T H1c / (m - 1) + r1 I,     S22 = H2c^T H2c / (m - 1) + r2 I
    T   = S11^(-1/2) S12 S22^(-1/2)
    corr(H1, H2) = sum of the singular values of T   (the total canonical correlation, all o components)

and the loss is -corr. The ridge terms r1, r2 > 0 keep S11, S22 invertible for small batches.
"""

from __future__ import annotations

import torch


def _inv_sqrt_psd(mat: torch.Tensor, eps: float) -> torch.Tensor:
    """mat^(-1/2) for a symmetric positive definite matrix; eigenvalues below eps are clamped to eps."""
    eigval, eigvec = torch.linalg.eigh(mat)
    return eigvec @ torch.diag(eigval.clamp_min(eps).rsqrt()) @ eigvec.T


def canonical_correlations(h1: torch.Tensor, h2: torch.Tensor, r1: float = 1e-3, r2: float = 1e-3,
                           eps: float = 1e-9) -> torch.Tensor:
    """The min(o1, o2) regularised canonical correlations of views h1 (m, o1), h2 (m, o2), descending."""
    if h1.dim() != 2 or h2.dim() != 2 or h1.shape[0] != h2.shape[0]:
        raise ValueError(f"canonical_correlations: expected (m, o1), (m, o2), got {tuple(h1.shape)}, "
                         f"{tuple(h2.shape)}")
    m = h1.shape[0]
    if m < 2:
        raise ValueError(f"canonical_correlations: needs at least 2 samples, got {m}")
    if r1 <= 0 or r2 <= 0:
        raise ValueError(f"canonical_correlations: ridge terms must be positive, got r1={r1}, r2={r2}")
    h1c = h1 - h1.mean(dim=0, keepdim=True)
    h2c = h2 - h2.mean(dim=0, keepdim=True)
    s11 = h1c.T @ h1c / (m - 1) + r1 * torch.eye(h1.shape[1], dtype=h1.dtype, device=h1.device)
    s22 = h2c.T @ h2c / (m - 1) + r2 * torch.eye(h2.shape[1], dtype=h2.dtype, device=h2.device)
    s12 = h1c.T @ h2c / (m - 1)
    t = _inv_sqrt_psd(s11, eps) @ s12 @ _inv_sqrt_psd(s22, eps)
    return torch.linalg.svdvals(t)


def dcca_loss(h1: torch.Tensor, h2: torch.Tensor, r1: float = 1e-3, r2: float = 1e-3) -> torch.Tensor:
    """Negative total canonical correlation of the two projected views (scalar, in [-min(o1, o2), 0])."""
    return -canonical_correlations(h1, h2, r1, r2).sum()
