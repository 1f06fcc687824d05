"""Cross attention (CA) between the HBP and PRE features, Eqs. (2) and (3) of CMD-Net.

    X_hat = A(Q_x, K_x) V_x + A(Q_x, K_y) V_y          (2)
    Y_hat = A(Q_y, K_x) V_x + A(Q_y, K_y) V_y          (3)

with `Q_x, K_x, V_x` linear maps of `X` (HBP), `Q_y, K_y, V_y` linear maps of `Y` (PRE). The paper writes
`V x (Q K^T)` with no softmax and no scaling and does not say what a "token" is; the choices made here:

- Token layout. A vector input `(B, D)` (the 512-d Z of each encoder) is cut into `n_tokens` tokens of
  `D / n_tokens` values each: `(B, D) -> (B, n_tokens, D / n_tokens)`; the output is reshaped back to
  `(B, D)`. A token sequence `(B, N, d)` (e.g. flattened spatial feature maps, `N = Z*Y*X`, `d = C`) is
  used as is, with `d == token_dim`; X and Y may then hold different numbers of tokens.
- Attention weights `A(Q, K)`: `softmax="separate"` (default) normalises each score map over its own keys
  (two softmaxes, the literal reading of "two score maps ... added together"); `"joint"` normalises over the
  concatenated keys `[K_x; K_y]` (standard cross attention: the two terms share one distribution);
  `"none"` uses the raw products `Q K^T` exactly as written in the paper (unbounded; use with care).
- Scaling: `scaling="sqrt_d"` (default) multiplies scores by `1 / sqrt(token_dim)` as in Vaswani et al.;
  `"none"` leaves them unscaled.
- Residual: `residual=True` (default) returns `X + (2)` and `Y + (3)`, so the module starts close to the
  identity and the refined features stay on the scale of the encoder outputs (a deviation from the paper,
  which returns (2) and (3) alone; `residual=False` gives the paper's form).
- `enabled=False` makes the module the identity `(X, Y) -> (X, Y)` with no parameters: the w/o-CA ablation.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

SoftmaxMode = Literal["separate", "joint", "none"]
ScalingMode = Literal["sqrt_d", "none"]


class CrossAttention(nn.Module):
    """Refine two features with each other (Eqs. 2, 3). Shapes: `(B, D)` or `(B, N, token_dim)`, both in = out.

    Args:
        dim: length `D` of vector inputs (the encoders' `feature_dim`).
        n_tokens: number of tokens a vector input is cut into; must divide `dim`.
        softmax, scaling, residual, enabled: see the module docstring.
    """

    def __init__(self, dim: int, *, n_tokens: int = 8, softmax: SoftmaxMode = "separate",
                 scaling: ScalingMode = "sqrt_d", residual: bool = True, enabled: bool = True):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if n_tokens < 1 or dim % n_tokens:
            raise ValueError(f"n_tokens must be a positive divisor of dim={dim}, got {n_tokens}")
        if softmax not in ("separate", "joint", "none"):
            raise ValueError(f"softmax must be 'separate', 'joint' or 'none', got {softmax!r}")
        if scaling not in ("sqrt_d", "none"):
            raise ValueError(f"scaling must be 'sqrt_d' or 'none', got {scaling!r}")
        self.dim = dim
        self.n_tokens = n_tokens
        self.token_dim = dim // n_tokens
        self.softmax = softmax
        self.scaling = scaling
        self.residual = residual
        self.enabled = enabled
        if enabled:
            d = self.token_dim
            self.q_x, self.k_x, self.v_x = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            self.q_y, self.k_y, self.v_y = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, n_tokens={self.n_tokens}, softmax={self.softmax!r}, "
                f"scaling={self.scaling!r}, residual={self.residual}, enabled={self.enabled}")

    def _to_tokens(self, t: Tensor, name: str) -> Tensor:
        if t.ndim == 2:
            if t.shape[1] != self.dim:
                raise ValueError(f"{name} has {t.shape[1]} features, CrossAttention expects dim={self.dim}")
            return t.reshape(t.shape[0], self.n_tokens, self.token_dim)
        if t.ndim == 3:
            if t.shape[2] != self.token_dim:
                raise ValueError(f"{name} tokens have {t.shape[2]} values, expected token_dim={self.token_dim}")
            return t
        raise ValueError(f"{name} must be (B, D) or (B, N, token_dim), got shape {tuple(t.shape)}")

    def _attend(self, q: Tensor, keys: tuple[Tensor, Tensor], values: tuple[Tensor, Tensor]) -> Tensor:
        scale = 1.0 / math.sqrt(self.token_dim) if self.scaling == "sqrt_d" else 1.0
        scores = [q @ k.transpose(-1, -2) * scale for k in keys]
        if self.softmax == "joint":
            weights = torch.softmax(torch.cat(scores, dim=-1), dim=-1)
            return weights @ torch.cat(values, dim=1)
        if self.softmax == "separate":
            scores = [torch.softmax(s, dim=-1) for s in scores]
        return scores[0] @ values[0] + scores[1] @ values[1]

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Return `(X_hat, Y_hat)`, each of its input's shape."""
        if not self.enabled:
            return x, y
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y batch sizes differ: {x.shape[0]} vs {y.shape[0]}")
        tx, ty = self._to_tokens(x, "x"), self._to_tokens(y, "y")
        keys = (self.k_x(tx), self.k_y(ty))
        values = (self.v_x(tx), self.v_y(ty))
        x_hat = self._attend(self.q_x(tx), keys, values)
        y_hat = self._attend(self.q_y(ty), keys, values)
        if self.residual:
            x_hat, y_hat = tx + x_hat, ty + y_hat
        return x_hat.reshape(x.shape), y_hat.reshape(y.shape)
