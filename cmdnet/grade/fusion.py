"""Fusion heads on the standardised local (Y1) and non-local (Y2) deep features.

All heads take row-major feature batches y1 (B, I1), y2 (B, I2) -- i.e. the paper's Y_i (I_i x J) transposed,
with J = B samples -- and return (logits (B, n_classes), aux_loss scalar). aux_loss is the head's own
objective (CIFA Eq. 6, DCCA) in training mode and 0 in eval mode, or when the head's `aux_enabled` is False
(the training loop switches it off where the objective's weight is 0, to save its cost).
"""

from __future__ import annotations

import torch
from torch import nn

from cmdnet.grade.dcca import dcca_loss

CIFA_MODES = ("both", "common", "individual")


def _zero(ref: torch.Tensor) -> torch.Tensor:
    return ref.new_zeros(())


class SingleHead(nn.Module):
    """One feature set -> FC -> logits (the 'local' and 'nonlocal' rows of Table 1)."""

    def __init__(self, in_features: int, n_classes: int = 2):
        super().__init__()
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc(y), _zero(y)


class ConcatHead(nn.Module):
    """Direct concatenation [Y1, Y2] -> FC (Table 2, 'direct concatenation').

    With `analysis` (a `CIFAAnalysis`), the head also returns that analysis' objective as its auxiliary loss
    while the classifier still sees [Y1, Y2] (the `concat_aux` control: the CIFA objective without the CIFA
    head).
    """

    def __init__(self, i1: int, i2: int, n_classes: int = 2, analysis: CIFAAnalysis | None = None):
        super().__init__()
        self.fc = nn.Linear(i1 + i2, n_classes)
        self.analysis = analysis
        self.aux_enabled = True

    def forward(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wanted = self.analysis is not None and self.training and self.aux_enabled
        aux = self.analysis.objective(y1, y2) if wanted else _zero(y1)
        return self.fc(torch.cat([y1, y2], dim=1)), aux


class DCCAHead(nn.Module):
    """Deep correlation model: linear projections H_i = f_i(Y_i) (B, out_dim) trained with the DCCA loss
    (negative total canonical correlation, ridge r1, r2), and FC on the projected features [H1, H2]."""

    def __init__(self, i1: int, i2: int, out_dim: int = 16, r1: float = 1e-3, r2: float = 1e-3,
                 n_classes: int = 2):
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"DCCAHead: out_dim must be positive, got {out_dim}")
        self.p1 = nn.Linear(i1, out_dim)
        self.p2 = nn.Linear(i2, out_dim)
        self.r1, self.r2 = r1, r2
        self.fc = nn.Linear(2 * out_dim, n_classes)
        self.aux_enabled = True

    def projections(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views H1 = p1(y1), H2 = p2(y2), each (B, out_dim)."""
        return self.p1(y1), self.p2(y2)

    def forward(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1, h2 = self.projections(y1, y2)
        aux = dcca_loss(h1, h2, self.r1, self.r2) if self.training and self.aux_enabled else _zero(y1)
        return self.fc(torch.cat([h1, h2], dim=1)), aux


class CIFAAnalysis(nn.Module):
    """Common and individual feature analysis (Eqs. 4-6): the learned V_i, the constructed Q_i, the objective.

    Learned: V_i (k x I_i), initialised row-orthonormal, trained jointly with the network by the optimiser
    of the whole model (not by the paper's alternating optimisation; docs/grading.md). Constructed (no
    gradient): Q_i ((I_i - k) x I_i), the orthonormal basis of the orthogonal complement of V_i's row space,
    from the full SVD of V_i (the last I_i - k right singular vectors). Components, in the paper's column form:

        J_i = V_i^T V_i Y_i   (common),      A_i = Q_i^T Q_i Y_i   (individual)

    Objective (Eq. 6, divided by the batch size B so that its weight does not depend on B):

        ||V1 Y1 - V2 Y2||_F^2 + sum_i phi_i ||Y_i - J_i - A_i||_F^2 + sum_i theta_i ||V_i Q_i^T||_F^2
        + ortho_weight * sum_i ||V_i V_i^T - I_k||_F^2

    The paper writes the orthogonality constraint as V_i^T Q_i = 0, which does not conform for k x I_i
    and (I_i - k) x I_i matrices; the meant condition, rows of V_i orthogonal to rows of Q_i, is V_i Q_i^T = 0.
    With Q_i built from V_i's SVD that term is zero up to rounding; it is kept for fidelity to Eq. 6.
    The first term alone is minimised by the trivial V_i = 0. The phi-term already penalises non-projector
    V_i^T V_i, but it vanishes in directions Y does not occupy, so we add the explicit orthonormality
    penalty ||V_i V_i^T - I||^2: V_i stays (near) row-orthonormal, J_i is then the orthogonal projection of
    Y_i onto V_i's row space and J_i + A_i = Y_i: Eq. 3's residual R_i is zero by construction (Eq. 5's
    equality constraint is followed, not Eq. 3's noisy decomposition).
    """

    def __init__(self, i1: int, i2: int, k: int = 16, phi: tuple[float, float] = (1.0, 1.0),
                 theta: tuple[float, float] = (1.0, 1.0), ortho_weight: float = 1.0):
        super().__init__()
        if not 1 <= k < min(i1, i2):
            raise ValueError(f"CIFA: common dimension k must satisfy 1 <= k < min(I1, I2) = {min(i1, i2)}, "
                             f"got {k}")
        self.k = k
        self.phi, self.theta, self.ortho_weight = tuple(phi), tuple(theta), ortho_weight
        self.v1 = nn.Parameter(nn.init.orthogonal_(torch.empty(k, i1)))
        self.v2 = nn.Parameter(nn.init.orthogonal_(torch.empty(k, i2)))
        self.aux_enabled = True

    @staticmethod
    def complement(v: torch.Tensor) -> torch.Tensor:
        """Orthonormal rows spanning the orthogonal complement of v's row space ((I - k) x I), no gradient."""
        with torch.no_grad():
            _, _, vh = torch.linalg.svd(v.detach(), full_matrices=True)
        return vh[v.shape[0]:]

    def components(self, y1: torch.Tensor, y2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Row-form components: J_i^T = y_i V_i^T V_i, A_i^T = y_i Q_i^T Q_i (each (B, I_i)); also Q_i."""
        q1, q2 = self.complement(self.v1), self.complement(self.v2)
        return {
            "J1": y1 @ self.v1.T @ self.v1, "J2": y2 @ self.v2.T @ self.v2,
            "A1": y1 @ q1.T @ q1, "A2": y2 @ q2.T @ q2, "Q1": q1, "Q2": q2,
        }

    def objective(self, y1: torch.Tensor, y2: torch.Tensor,
                  comp: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Eq. 6 plus the orthonormality penalty, divided by the batch size (see class docstring)."""
        comp = self.components(y1, y2) if comp is None else comp
        loss = (y1 @ self.v1.T - y2 @ self.v2.T).square().sum()
        eye = torch.eye(self.k, dtype=y1.dtype, device=y1.device)
        for i, (y, v) in enumerate(((y1, self.v1), (y2, self.v2)), start=1):
            q = comp[f"Q{i}"]
            loss = loss + self.phi[i - 1] * (y - comp[f"J{i}"] - comp[f"A{i}"]).square().sum()
            loss = loss + self.theta[i - 1] * (v @ q.T).square().sum() * y.shape[0]
            loss = loss + self.ortho_weight * (v @ v.T - eye).square().sum() * y.shape[0]
        return loss / y1.shape[0]


class CIFAHead(CIFAAnalysis):
    """The CIFA analysis followed by FC on the components of `mode`.

    mode: "both" -> FC on [J1, A1, A2] (the proposed model), "common" -> FC on [J1],
    "individual" -> FC on [A1, A2]. J1 is used as the common component (the paper: "J1 or J2").

    Algebra (pinned by a test; docs/grading.md): every component is a linear map of y1 or y2, so the head is
    a concat head FC([y1, y2]) whose weight is `concat_equivalent()`:
        W = [W_J V1^T V1 + W_A1 Q1^T Q1,  W_A2 Q2^T Q2]
    Its y2 block annihilates V2's row space (W_A2 Q2^T Q2 V2^T = 0) and, with V1 row-orthonormal, its y1
    block is unrestricted. So the CIFA head is a restricted concat head: whatever CIFA adds over `concat`
    comes from the auxiliary objective shaping the features and from hiding V2's k-dim subspace.
    """

    def __init__(self, i1: int, i2: int, k: int = 16, mode: str = "both", phi: tuple[float, float] = (1.0, 1.0),
                 theta: tuple[float, float] = (1.0, 1.0), ortho_weight: float = 1.0, n_classes: int = 2):
        if mode not in CIFA_MODES:
            raise ValueError(f"CIFAHead: mode must be one of {CIFA_MODES}, got {mode!r}")
        super().__init__(i1, i2, k, phi, theta, ortho_weight)
        self.mode = mode
        fc_in = {"both": i1 + i1 + i2, "common": i1, "individual": i1 + i2}[mode]
        self.fc = nn.Linear(fc_in, n_classes)

    def forward(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        comp = self.components(y1, y2)
        parts = {"both": ("J1", "A1", "A2"), "common": ("J1",), "individual": ("A1", "A2")}[self.mode]
        logits = self.fc(torch.cat([comp[p] for p in parts], dim=1))
        aux = self.objective(y1, y2, comp) if self.training and self.aux_enabled else _zero(y1)
        return logits, aux

    @torch.no_grad()
    def concat_equivalent(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (n_classes, I1 + I2), bias) of the concat head FC([y1, y2]) with the same logits."""
        i1, i2 = self.v1.shape[1], self.v2.shape[1]
        p_v1 = self.v1.T @ self.v1
        q1, q2 = self.complement(self.v1), self.complement(self.v2)
        p_q1, p_q2 = q1.T @ q1, q2.T @ q2
        w = self.fc.weight
        if self.mode == "both":
            blocks = (w[:, :i1] @ p_v1 + w[:, i1:2 * i1] @ p_q1, w[:, 2 * i1:] @ p_q2)
        elif self.mode == "common":
            blocks = (w @ p_v1, w.new_zeros(w.shape[0], i2))
        else:
            blocks = (w[:, :i1] @ p_q1, w[:, i1:] @ p_q2)
        return torch.cat(blocks, dim=1), self.fc.bias.clone()
