"""Multi-class focal loss (Lin et al. 2017), used for the supervised terms L_T^s and L_S^s of Eq. 6."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmdnet.mvi.losses._reduce import Reduction, check_logits, check_reduction, reduce
from cmdnet.mvi.losses.terms import LossTerm, NoSettings, Step, TermContext, loss_term


class FocalLoss(nn.Module):
    """Per-sample multi-class focal loss computed from the log-softmax of each sample's logits.

        FL_i = - alpha_{y_i} * (1 - p_{i, y_i})^gamma * log p_{i, y_i},   p_i = softmax(logits_i)

    `alpha` is a PER-CLASS weight vector of length C (`alpha[c]` multiplies the loss of every sample whose
    true class is c), not the binary foreground/background alpha of the detection paper; `None` means 1 for
    every class. With `gamma=0` and `alpha=None` the loss equals `F.cross_entropy` exactly.

    Reduction: "mean" is the plain mean of FL_i over the B samples (with `alpha` this differs from
    `F.cross_entropy(weight=...)`, which divides by the sum of the weights), "sum" the sum, "none" the
    `(B,)` vector.

    Shapes: `logits (B, C)` float, `target (B,)` integer class indices in `[0, C)`.
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | Tensor | None = None,
                 reduction: Reduction = "mean"):
        super().__init__()
        if not (isinstance(gamma, (int, float)) and np.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
        self.gamma = float(gamma)
        self.reduction = check_reduction(reduction)
        if alpha is None:
            self.alpha: Tensor | None = None
        else:
            a = torch.as_tensor(alpha, dtype=torch.float32).flatten().clone()
            if a.numel() < 2:
                raise ValueError(f"alpha must hold one weight per class (at least 2), got {a.tolist()}")
            if not torch.isfinite(a).all() or (a < 0).any():
                raise ValueError(f"alpha weights must be finite and non-negative, got {a.tolist()}")
            self.register_buffer("alpha", a)

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else [round(v, 4) for v in self.alpha.tolist()]
        return f"gamma={self.gamma}, alpha={alpha}, reduction={self.reduction!r}"

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        check_logits(logits, "logits")
        n_classes = logits.shape[1]
        if target.ndim != 1 or target.shape[0] != logits.shape[0]:
            raise ValueError(f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")
        if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise ValueError(f"target must hold integer class indices, got {target.dtype}")
        target = target.long()
        if target.numel() and (target.min() < 0 or target.max() >= n_classes):
            raise ValueError(f"target classes must be in [0, {n_classes}), got {sorted(set(target.tolist()))}")
        if self.alpha is not None and self.alpha.numel() != n_classes:
            raise ValueError(f"alpha has {self.alpha.numel()} weights but logits have {n_classes} classes")

        log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -log_p
        if self.gamma != 0.0:
            loss = (1.0 - log_p.exp()).clamp(min=0.0).pow(self.gamma) * loss
        if self.alpha is not None:
            loss = self.alpha.to(loss.dtype)[target] * loss
        return reduce(loss, self.reduction)


def class_balanced_alpha(labels: Sequence[int] | np.ndarray | Tensor, n_classes: int,
                         normalise: Literal["mean", "sum"] = "mean") -> Tensor:
    """Per-class focal `alpha` from TRAINING-fold labels: inverse class frequency, normalised.

        alpha_c = (1 / n_c) / Z,   Z such that mean_c alpha_c = 1 ("mean", default) or sum_c alpha_c = 1 ("sum")

    "mean" keeps the loss on the scale of the unweighted loss (a class of average frequency gets weight 1).
    Never compute it on the test fold. Raises ValueError if a class has no training sample or a label is
    outside `[0, n_classes)`. Returns a float32 tensor `(n_classes,)`.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if normalise not in ("mean", "sum"):
        raise ValueError(f"normalise must be 'mean' or 'sum', got {normalise!r}")
    arr = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError("labels must be integer class indices")
        arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"labels must be in [0, {n_classes}), got values {sorted(set(arr.tolist()))}")
    counts = np.bincount(arr, minlength=n_classes)
    missing = [c for c in range(n_classes) if counts[c] == 0]
    if missing:
        raise ValueError(f"classes {missing} have no training sample; cannot weight by inverse frequency")
    inv = 1.0 / counts.astype(np.float64)
    inv = inv / inv.mean() if normalise == "mean" else inv / inv.sum()
    return torch.as_tensor(inv, dtype=torch.float32)


@loss_term
class FocalTerm(LossTerm):
    """`focal`: the supervised loss of the network being trained (L_S^s of a student, L_T^s of a teacher; Eq. 6),
    a `FocalLoss` with `mvi.training.focal_gamma` and per-class `alpha` = `mvi.training.focal_alpha`, or the
    inverse class frequencies of the training fold when that is null."""

    name = "focal"

    def __init__(self, settings: NoSettings, context: TermContext):
        super().__init__()
        cfg = context.training
        alpha = (cfg.focal_alpha if cfg.focal_alpha is not None
                 else class_balanced_alpha(context.train_labels, context.n_classes))
        self.loss = FocalLoss(gamma=cfg.focal_gamma, alpha=alpha)

    def forward(self, step: Step) -> Tensor:
        return self.loss(step.output.logits, step.labels)


@loss_term
class AuxiliaryFocalTerm(FocalTerm):
    """`aux_focal`: the same focal loss on every auxiliary head of the output (`features["aux_logits_<name>"]`,
    e.g. Concat_2S's per-phase classifiers), averaged over the heads."""

    name = "aux_focal"
    PREFIX = "aux_logits_"

    def forward(self, step: Step) -> Tensor:
        heads = [v for k, v in sorted(step.output.features.items()) if k.startswith(self.PREFIX)]
        if not heads:
            raise ValueError("aux_focal: the network has no auxiliary heads (features 'aux_logits_*')")
        return torch.stack([self.loss(h, step.labels) for h in heads]).mean()
