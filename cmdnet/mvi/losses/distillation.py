"""Distillation losses: class-level (Eq. 4), feature-level (Eq. 5) and similarity-preserving (Tung & Mori).

Direction: in every KL here the TEACHER distribution `p` is the target and the student `q` the
approximation, `KL(p || q) = sum_m p_m (log p_m - log q_m)`. The teacher is detached by default
(`detach_teacher=True`) so these losses train only the student; pass `False` when teacher and student are
trained jointly and the teacher should also be pulled towards the student.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmdnet.mvi.losses._reduce import Reduction, check_logits, check_reduction, reduce
from cmdnet.mvi.losses.terms import LossTerm, NoSettings, Step, TermContext, loss_term

DISTILLED_PHASES: tuple[str, str] = ("hbp", "pre")


def _check_temperature(temperature: float) -> float:
    if not (isinstance(temperature, (int, float)) and temperature > 0 and temperature != float("inf")):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def softened_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Per-sample `T^2 * KL(softmax(teacher / T) || softmax(student / T))`, shape `(B,)`."""
    log_q = F.log_softmax(student / temperature, dim=1)
    log_p = F.log_softmax(teacher / temperature, dim=1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return kl * temperature ** 2


class ClassDistillationLoss(nn.Module):
    """Class-level distillation (Eq. 4; Hinton et al. 2015):

        L = T^2 * (1/B) sum_i KL( softmax(z^t_i / T) || softmax(z^s_i / T) )

    with the teacher's softened probabilities as the target. The `T^2` factor keeps the gradient scale of
    the soft term independent of T (Hinton et al.). "mean" is `batchmean`: the per-sample KL (summed over
    classes) averaged over the B samples, i.e. `F.kl_div(..., reduction="batchmean")`, not the element-wise
    mean; "sum" sums over samples, "none" returns `(B,)`.

    Shapes: `student_logits`, `teacher_logits` `(B, C)`. `temperature` has no default on purpose: state it.
    """

    def __init__(self, temperature: float, *, detach_teacher: bool = True, reduction: Reduction = "mean"):
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.detach_teacher = detach_teacher
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, detach_teacher={self.detach_teacher}, reduction={self.reduction!r}"

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        check_logits(student_logits, "student_logits")
        check_logits(teacher_logits, "teacher_logits")
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                             f"{tuple(teacher_logits.shape)} differ in shape")
        teacher = teacher_logits.detach() if self.detach_teacher else teacher_logits
        return reduce(softened_kl(student_logits, teacher, self.temperature), self.reduction)


HintonKDLoss = ClassDistillationLoss
"""KD_ours of Table 1: Hinton's soft-target loss is the class-level loss alone."""


class FeatureDistillationLoss(nn.Module):
    """Feature-level distillation (Eq. 5) of the encoders' Z vectors:

        L = T^2 * [ KL( softmax(Z^t_hbp / T) || softmax(Z^s_hbp / T) )
                    + beta1 * KL( softmax(Z^t_pre / T) || softmax(Z^s_pre / T) ) ]

    each KL taken over the D feature entries of a sample and averaged over the batch ("mean" = batchmean),
    summed ("sum"), or returned per sample `(B,)` ("none"). The paper's Eq. 5 has `T = 1` and `beta1 = 1`.

    `forward(student_features, teacher_features)` takes the `ModelOutput.features` dicts; the Z vectors are
    under "hbp" and "pre", shape `(B, D)`. A phase absent from both (the w/o-hbp / w/o-pre ablations) is
    skipped; a phase present in only one of them is an error.
    """

    def __init__(self, beta1: float = 1.0, temperature: float = 1.0, *, detach_teacher: bool = True,
                 reduction: Reduction = "mean"):
        super().__init__()
        if not (isinstance(beta1, (int, float)) and beta1 >= 0):
            raise ValueError(f"beta1 must be a number >= 0, got {beta1!r}")
        self.beta1 = float(beta1)
        self.temperature = _check_temperature(temperature)
        self.detach_teacher = detach_teacher
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return (f"beta1={self.beta1}, temperature={self.temperature}, detach_teacher={self.detach_teacher}, "
                f"reduction={self.reduction!r}")

    def forward(self, student_features: Mapping[str, Tensor], teacher_features: Mapping[str, Tensor]) -> Tensor:
        s_phases = [p for p in DISTILLED_PHASES if p in student_features]
        t_phases = [p for p in DISTILLED_PHASES if p in teacher_features]
        if s_phases != t_phases:
            raise ValueError(f"student features hold phases {s_phases} but teacher features hold {t_phases}; "
                             "distil models built with the same phases")
        if not s_phases:
            raise ValueError(f"neither features dict holds any of {DISTILLED_PHASES}")
        weights = {"hbp": 1.0, "pre": self.beta1}
        total: Tensor | None = None
        for phase in s_phases:
            zs, zt = student_features[phase], teacher_features[phase]
            if zs.ndim != 2 or zs.shape != zt.shape:
                raise ValueError(f"'{phase}' features must both be (B, D); student {tuple(zs.shape)}, "
                                 f"teacher {tuple(zt.shape)}")
            zt = zt.detach() if self.detach_teacher else zt
            term = weights[phase] * softened_kl(zs, zt, self.temperature)
            total = term if total is None else total + term
        return reduce(total, self.reduction)


class SimilarityPreservingLoss(nn.Module):
    """Similarity-preserving distillation (Tung & Mori 2019, Eq. 4 of their paper):

        G = A A^T (B x B),  A = features flattened to (B, -1);  G~ = G with each row L2-normalised
        L = (1/B^2) * || G~_t - G~_s ||_F^2

    (the squared Frobenius norm, as in the original). Student and teacher features may differ in size; only
    their batch sizes must match. "mean" gives L above (the mean over the B^2 entries), "sum" the
    un-normalised `||.||_F^2`, "none" the `(B, B)` matrix of squared differences. Used with the teacher's
    and student's `features` (e.g. "fused") for SP_ours.
    """

    def __init__(self, *, detach_teacher: bool = True, reduction: Reduction = "mean"):
        super().__init__()
        self.detach_teacher = detach_teacher
        self.reduction = check_reduction(reduction)

    @staticmethod
    def similarity(features: Tensor) -> Tensor:
        a = features.flatten(1)
        return F.normalize(a @ a.transpose(0, 1), p=2, dim=1)

    def forward(self, student_features: Tensor, teacher_features: Tensor) -> Tensor:
        if student_features.ndim < 2 or teacher_features.ndim < 2:
            raise ValueError("features must have a batch axis and at least one feature axis")
        if student_features.shape[0] != teacher_features.shape[0]:
            raise ValueError(f"batch sizes differ: student {student_features.shape[0]}, "
                             f"teacher {teacher_features.shape[0]}")
        teacher = teacher_features.detach() if self.detach_teacher else teacher_features
        diff = (self.similarity(teacher) - self.similarity(student_features)).pow(2)
        if self.reduction == "mean":
            return diff.mean()
        if self.reduction == "sum":
            return diff.sum()
        return diff


def _teacher_output(step: Step, term: str):
    if step.teacher is None:
        raise ValueError(f"{term}: this step has no teacher output (the term belongs to a distilled method)")
    return step.teacher


@dataclass(frozen=True)
class ClassKDSettings:
    temperature: float


@loss_term
class ClassKDTerm(LossTerm):
    """`class_kd`: class-level distillation (Eq. 4; Hinton et al. 2015 with a temperature), see
    `ClassDistillationLoss`. Eq. 4 has no temperature: CMD-Net's objective sets `temperature: 1`, KD_ours
    keeps Hinton's softened targets."""

    name = "class_kd"
    needs_teacher = True
    Settings = ClassKDSettings

    def __init__(self, settings: ClassKDSettings, context: TermContext):
        super().__init__()
        self.loss = ClassDistillationLoss(temperature=settings.temperature)

    def forward(self, step: Step) -> Tensor:
        return self.loss(step.output.logits, _teacher_output(step, self.name).logits)


@dataclass(frozen=True)
class FeatureKDSettings:
    beta1: float
    temperature: float


@loss_term
class FeatureKDTerm(LossTerm):
    """`feature_kd`: feature-level distillation of the encoders' Z vectors (Eq. 5), see `FeatureDistillationLoss`."""

    name = "feature_kd"
    needs_teacher = True
    Settings = FeatureKDSettings

    def __init__(self, settings: FeatureKDSettings, context: TermContext):
        super().__init__()
        self.loss = FeatureDistillationLoss(beta1=settings.beta1, temperature=settings.temperature)

    def forward(self, step: Step) -> Tensor:
        return self.loss(step.output.features, _teacher_output(step, self.name).features)


STAGE_KEY = re.compile(r"[a-z]+_stage\d+")


@loss_term
class SimilarityKDTerm(LossTerm):
    """`sp_kd`: similarity-preserving distillation (Tung & Mori 2019, Eq. 4 of their paper) summed over the
    activation maps at the ends of the encoders' stages (`features["<phase>_stage<k>"]`, every phase and stage the
    student and teacher share):

        L_SP = sum_l (1/b^2) || G~_t^(l) - G~_s^(l) ||_F^2

    Tung & Mori weight it by gamma = 3000 (their CIFAR operating point, also RepDistiller's): the weight in the
    config."""

    name = "sp_kd"
    needs_teacher = True

    def __init__(self, settings: NoSettings, context: TermContext):
        super().__init__()
        self.loss = SimilarityPreservingLoss()

    def forward(self, step: Step) -> Tensor:
        teacher = _teacher_output(step, self.name).features
        keys = sorted(k for k in step.output.features if STAGE_KEY.fullmatch(k))
        if not keys or any(k not in teacher for k in keys):
            raise ValueError(f"sp_kd: student stage maps {keys} and teacher stage maps "
                             f"{sorted(k for k in teacher if STAGE_KEY.fullmatch(k))} do not pair up")
        return torch.stack([self.loss(step.output.features[k], teacher[k]) for k in keys]).sum()
