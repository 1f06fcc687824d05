"""Compact bilinear pooling (Tensor Sketch; Pham & Pagh 2013, Gao et al. 2016, Fukui et al. 2016).

The bilinear (outer-product) feature of two vectors, `x (B, C1)` and `y (B, C2)`, is `vec(x y^T)` with
`C1 * C2` entries. Its count sketch of size `d` is

    phi(x, y)[j] = sum_{a, b : (h1(a) + h2(b)) mod d = j}  s1(a) s2(b) x_a y_b

with fixed random hashes `h_k` into `{0 .. d-1}` and signs `s_k` in `{-1, +1}`. It is computed without
forming the outer product, as the circular convolution of the two vectors' count sketches,
`phi = IFFT(FFT(CS_1(x)) * FFT(CS_2(y)))`, in `O(B (C1 + C2 + d log d))`; inner products of sketches
estimate those of the outer products without bias, `E<phi(x, y), phi(x', y')> = <x, x'> <y, y'>`.
More than two inputs multiply more spectra (the sketch of their higher-order outer product).
The hashes and signs are drawn once from `seed` and kept as buffers (saved with the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import torch
from torch import Tensor, nn


class CompactBilinearPooling(nn.Module):
    """`forward(x_1 (B, C_1), ..., x_n (B, C_n)) -> (B, out_dim)`: the count sketch of `x_1 ⊗ ... ⊗ x_n`."""

    def __init__(self, in_dims: Sequence[int], out_dim: int, *, seed: int = 0):
        super().__init__()
        in_dims = tuple(int(c) for c in in_dims)
        if len(in_dims) < 2 or any(c < 1 for c in in_dims):
            raise ValueError(f"bilinear pooling needs at least two positive input sizes, got {in_dims}")
        if out_dim < 1:
            raise ValueError(f"out_dim must be positive, got {out_dim}")
        self.in_dims = in_dims
        self.out_dim = int(out_dim)
        generator = torch.Generator().manual_seed(seed)
        for k, c in enumerate(in_dims):
            self.register_buffer(f"hash_{k}", torch.randint(self.out_dim, (c,), generator=generator))
            self.register_buffer(f"sign_{k}", torch.randint(2, (c,), generator=generator).float() * 2 - 1)

    def hashes(self, k: int) -> tuple[Tensor, Tensor]:
        """Input `k`'s hash `(C_k,)` (int64 in `[0, out_dim)`) and sign `(C_k,)` (+-1) vectors."""
        return getattr(self, f"hash_{k}"), getattr(self, f"sign_{k}")

    def count_sketch(self, x: Tensor, k: int) -> Tensor:
        """`CS_k(x)[j] = sum_{a : h_k(a) = j} s_k(a) x_a`: `(B, C_k) -> (B, out_dim)`."""
        h, s = self.hashes(k)
        return x.new_zeros(x.shape[0], self.out_dim).index_add_(1, h, x * s)

    def forward(self, *xs: Tensor) -> Tensor:
        if len(xs) != len(self.in_dims):
            raise ValueError(f"expected {len(self.in_dims)} inputs, got {len(xs)}")
        for k, x in enumerate(xs):
            if x.ndim != 2 or x.shape[1] != self.in_dims[k]:
                raise ValueError(f"input {k} must be (B, {self.in_dims[k]}), got {tuple(x.shape)}")
        # FFTs in float32 (no bf16 FFT on CPUs; the product of spectra is sensitive to rounding).
        spectra = [torch.fft.rfft(self.count_sketch(x.float(), k), dim=1) for k, x in enumerate(xs)]
        return torch.fft.irfft(reduce(torch.mul, spectra), n=self.out_dim, dim=1)


def signed_sqrt_l2(phi: Tensor, eps: float = 1e-8) -> Tensor:
    """`y = sign(phi) sqrt(|phi| + eps)`, then `y / ||y||_2` per row: the normalisation bilinear features get
    before a classifier (Lin et al. 2015; Gao et al. 2016). `eps` keeps the gradient of sqrt finite at 0."""
    return nn.functional.normalize(torch.sign(phi) * torch.sqrt(phi.abs() + eps), dim=1)
