"""What a model learns from: the supervised focal loss alone, or distillation from a frozen teacher.

The total loss of a distilled student (the paper's Eq. 6 without the teacher's own term, which the teacher
already minimised in its own training; `joint=True` adds it back and updates the teacher too):

    L = L_S (focal) + w_class * L_class (Eq. 4) + w_feature * L_feature (Eq. 5) + w_sp * L_SP

Which terms are on is the method's recipe (`cmdnet.methods.MethodSpec`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ..losses import ClassDistillationLoss, FeatureDistillationLoss, FocalLoss, SimilarityPreservingLoss
from ..methods import MethodSpec


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 4.0
    class_weight: float = 1.0
    feature_weight: float = 1.0
    feature_temperature: float = 1.0
    beta1: float = 1.0
    sp_weight: float = 1.0
    joint: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "DistillConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown distillation keys: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def as_dict(self) -> dict:
        return asdict(self)


def _auxiliary_logits(model: nn.Module, output) -> list[torch.Tensor]:
    """Per-phase heads of stage-wise models (Concat_2S): trained with the same focal loss."""
    aux = getattr(model, "auxiliary_logits", None)
    return list(aux(output).values()) if aux is not None else []


class SupervisedTask:
    """A model trained on its labels with the focal loss; `uses_clinical` for teachers."""

    def __init__(self, model: nn.Module, focal: FocalLoss, *, uses_clinical: bool):
        self.model = model
        self.focal = focal
        self.uses_clinical = uses_clinical
        self.modules = nn.ModuleDict({"model": model})

    def _forward(self, batch):
        if self.uses_clinical:
            return self.model(batch["images"], batch["clinical"])
        return self.model(batch["images"])

    def trainable_parameters(self):
        return list(self.model.parameters())

    def train_mode(self) -> None:
        self.model.train()

    def loss(self, batch):
        out = self._forward(batch)
        focal = self.focal(out.logits, batch["labels"])
        terms = {"focal": focal.item()}
        total = focal
        aux = _auxiliary_logits(self.model, out)
        if aux:
            aux_loss = torch.stack([self.focal(a, batch["labels"]) for a in aux]).mean()
            total = total + getattr(self.model, "aux_weight", 1.0) * aux_loss
            terms["stagewise"] = aux_loss.item()
        if self.uses_clinical and getattr(self.model, "clinical_weight", 0.0) > 0:  # L_clinical (teacher)
            clinical = self.model.clinical_weight * self.model.clinical_loss(out, batch["clinical"], batch["labels"],
                                                                             self.focal)
            total = total + clinical
            terms["clinical"] = clinical.item()
        terms["loss"] = total.item()
        return total, terms

    def logits(self, batch):
        return self._forward(batch).logits


class DistillationTask:
    """A student (images only) learning from labels and from a teacher that also saw the clinical vector."""

    def __init__(self, student: nn.Module, teacher: nn.Module, spec: MethodSpec, focal: FocalLoss,
                 cfg: DistillConfig):
        self.student, self.teacher, self.spec, self.focal, self.cfg = student, teacher, spec, focal, cfg
        self.modules = nn.ModuleDict({"model": student, "teacher": teacher})
        self.class_kd = ClassDistillationLoss(temperature=cfg.temperature)
        self.feature_kd = FeatureDistillationLoss(beta1=cfg.beta1, temperature=cfg.feature_temperature)
        self.similarity = SimilarityPreservingLoss()
        if not cfg.joint:
            for p in teacher.parameters():
                p.requires_grad_(False)

    def trainable_parameters(self):
        params = list(self.student.parameters())
        if self.cfg.joint:
            params += list(self.teacher.parameters())
        return params

    def train_mode(self) -> None:
        self.student.train()
        # A frozen teacher stays in eval mode: its BatchNorm statistics are the ones it was selected with.
        self.teacher.train(self.cfg.joint)

    def loss(self, batch):
        # joint: the teacher learns from its own L_T only; the distillation terms see it detached (the losses'
        # default), so the student cannot pull the teacher towards itself.
        out_s = self.student(batch["images"])
        with torch.set_grad_enabled(self.cfg.joint):
            out_t = self.teacher(batch["images"], batch["clinical"])
        total = self.focal(out_s.logits, batch["labels"])
        terms = {"focal": total.item()}
        if self.cfg.joint:
            l_t = self.focal(out_t.logits, batch["labels"])
            total = total + l_t
            terms["teacher_focal"] = l_t.item()
        if self.spec.class_kd:
            kd = self.class_kd(out_s.logits, out_t.logits)
            total = total + self.cfg.class_weight * kd
            terms["class_kd"] = kd.item()
        if self.spec.feature_kd:
            fkd = self.feature_kd(out_s.features, out_t.features)
            total = total + self.cfg.feature_weight * fkd
            terms["feature_kd"] = fkd.item()
        if self.spec.similarity_kd:
            sp = self.similarity(out_s.features["fused"], out_t.features["fused"])
            total = total + self.cfg.sp_weight * sp
            terms["sp_kd"] = sp.item()
        terms["loss"] = total.item()
        return total, terms

    def logits(self, batch):
        return self.student(batch["images"]).logits
