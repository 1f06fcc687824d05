"""Embedded-Gaussian non-local operation (Wang et al. 2018), as used WITHOUT residual connection.

For an input x with C channels at N positions (N = Z*Y*X in 3D, Y*X in 2D), Eq. 1-2 of the paper:

    theta = W_theta x,  phi = W_phi x,  g = W_g x          (1x1(x1) convolutions, C -> C_inter)
    y_i   = sum_j softmax_j(theta_i^T phi_j) g_j            (softmax over positions j, for each row i)

so y = softmax(x^T W_theta^T W_phi x) W_g x with shape (B, C_inter, *spatial). Unlike the residual
non-local block (z = W_z y + x, with W_z zero-initialised so the block starts as the identity), the
paper uses y directly as the non-local deep feature. Hence no zero initialisation here: every weight has
PyTorch's default (Kaiming-uniform) initialisation, and y is non-zero from the first step.

`subsample=True` applies Wang et al.'s subsampling trick (their Sec. 3.3): phi and g are max-pooled by 2 along
every axis, so each position i attends to N/8 (3D) or N/4 (2D) pooled positions j. The output keeps every
position i. On a CPU the N x N attention dominates a patch model's cost (memory-bound), and this makes it 8x
smaller in 3D; the default (False) is the grading paper's block as written.
"""

from __future__ import annotations

import torch
from torch import nn


class NonLocalBlock(nn.Module):
    """Non-local feature map y of Eq. 2.

    Args:
        in_channels: C, channels of the input feature map x.
        inter_channels: C_inter, channels of the theta/phi/g embeddings and of the output (paper: 64).
        dim: 3 for (B, C, Z, Y, X) inputs, 2 for (B, C, Y, X) inputs.
        subsample: max-pool phi and g by 2 (the subsampling trick of Wang et al.; see the module docstring).

    forward(x) -> y of shape (B, inter_channels, *x.shape[2:]).
    """

    def __init__(self, in_channels: int, inter_channels: int = 64, dim: int = 3, subsample: bool = False):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"NonLocalBlock: dim must be 2 or 3, got {dim!r}")
        if in_channels < 1 or inter_channels < 1:
            raise ValueError(f"NonLocalBlock: channels must be positive, got {in_channels}, {inter_channels}")
        conv = nn.Conv3d if dim == 3 else nn.Conv2d
        self.dim = dim
        self.theta = conv(in_channels, inter_channels, kernel_size=1)
        self.phi = conv(in_channels, inter_channels, kernel_size=1)
        self.g = conv(in_channels, inter_channels, kernel_size=1)
        pool = nn.MaxPool3d if dim == 3 else nn.MaxPool2d
        self.key_pool = pool(2) if subsample else nn.Identity()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, N, N_keys) matrix softmax_j(theta_i^T phi_j); each row i sums to 1."""
        theta = self.theta(x).flatten(2)                     # (B, C', N)
        phi = self.key_pool(self.phi(x)).flatten(2)          # (B, C', N) or (B, C', N / 2^dim) subsampled
        return torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.dim + 2:
            raise ValueError(f"NonLocalBlock({self.dim}d) expects a {self.dim + 2}-d input, got shape "
                             f"{tuple(x.shape)}")
        g = self.key_pool(self.g(x)).flatten(2)              # (B, C', N_keys)
        y = g @ self.attention(x).transpose(1, 2)            # y[:, :, i] = sum_j A[i, j] g[:, :, j]
        return y.reshape(x.shape[0], -1, *x.shape[2:])
