"""What an MVI network learns from: a weighted sum of named loss terms (torchdistill's `WeightedSumLoss` idea).

    L = sum_k w_k * term_k(step)

An objective is configured as `mvi.objectives.<name>: {<term>: {weight: w, ...settings}, ...}`; a method's registry
entry names its objective (`cmdnet.mvi.methods`). CMD-Net's Eq. 6 is, for the student,

    cmdnet: focal (L_S^s) + class_kd (Eq. 4) + feature_kd (Eq. 5)

and the teacher's own terms (`mvi.objectives.teacher`: focal L_T^s and, when configured, L_clinical) are minimised
either beforehand, in the teacher's own job (`mvi.distillation.mode: offline`: the student learns from a frozen,
pre-trained teacher), or in the same run (`joint`: the teacher is trained from scratch together with the student
under the whole of Eq. 6, `L_total = L_T + L_S + L_class + L_feature`). In both modes the distillation terms
see the teacher detached, so the student cannot pull the teacher towards itself.

Every step reports each term's weighted value under its name (`teacher_<term>` for the teacher's terms in joint
mode) and the total under `loss`; the training loop logs them per epoch as `train_<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from cmdnet.config import ConfigError
from cmdnet.mvi.losses import LOSS_TERMS  # noqa: F401  (imports every term module, so each registers)
from cmdnet.mvi.losses.terms import LossTerm, Step, TermContext, build_term, check_term

DISTILLATION_MODES = ("offline", "joint")


class WeightedSum(nn.Module):
    """`forward(step) -> (total, {name: weighted value})` over named, weighted terms (weight-0 terms are left out)."""

    def __init__(self, terms: Mapping[str, tuple[float, LossTerm]], prefix: str = ""):
        super().__init__()
        self.weights = {name: w for name, (w, _) in terms.items() if w > 0}
        self.terms = nn.ModuleDict({name: term for name, (w, term) in terms.items() if w > 0})
        self.prefix = prefix
        if not self.terms:
            raise ConfigError("an objective needs at least one term with a positive weight")

    @property
    def needs_teacher(self) -> bool:
        return any(t.needs_teacher for t in self.terms.values())

    def forward(self, step: Step) -> tuple[Tensor, dict[str, float]]:
        total: Tensor | None = None
        parts: dict[str, float] = {}
        for name, term in self.terms.items():
            value = self.weights[name] * term(step)
            parts[self.prefix + name] = value.item()
            total = value if total is None else total + value
        return total, parts


def build_objective(terms: Mapping[str, dict], context: TermContext, where: str, prefix: str = "") -> WeightedSum:
    """The objective of config `terms` (`{term: {weight, ...settings}}`); `where` names it in errors."""
    return WeightedSum({name: build_term(name, entry, context, f"{where}.{name}") for name, entry in terms.items()},
                       prefix=prefix)


def check_objectives(objectives: Mapping[str, Mapping[str, dict]]) -> None:
    """Validate every configured objective (term names and settings) before any job runs."""
    for objective, terms in objectives.items():
        if not terms or not any(isinstance(e, dict) and e.get("weight", 0) > 0 for e in terms.values()):
            raise ConfigError(f"config mvi.objectives.{objective}: needs at least one term with a positive weight")
        for name, entry in terms.items():
            check_term(name, entry, f"mvi.objectives.{objective}.{name}")


class SupervisedTask:
    """A network trained on its labels alone (baselines, undistilled students, teachers)."""

    def __init__(self, model: nn.Module, objective: WeightedSum, *, uses_clinical: bool):
        if objective.needs_teacher:
            raise ConfigError(f"objective terms {[n for n, t in objective.terms.items() if t.needs_teacher]} "
                              "need a teacher, but this network has none")
        self.model, self.objective, self.uses_clinical = model, objective, uses_clinical
        self.modules = nn.ModuleDict({"model": model, "objective": objective})

    def _forward(self, batch):
        return self.model(batch["images"], batch["clinical"]) if self.uses_clinical else self.model(batch["images"])

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def train_mode(self) -> None:
        self.model.train()

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        step = Step(batch["labels"], self._forward(batch), clinical=batch.get("clinical"))
        total, parts = self.objective(step)
        return total, {**parts, "loss": total.item()}

    def logits(self, batch) -> Tensor:
        return self._forward(batch).logits


class DistillationTask:
    """A student (images only) learning from labels and from a teacher that also sees the clinical vector.

    `mode="offline"`: the teacher is frozen and stays in eval mode (its BatchNorm statistics are those it was
    selected with). `mode="joint"`: the teacher is trained in the same run with `teacher_objective` added.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, objective: WeightedSum, *, mode: str,
                 teacher_objective: WeightedSum | None = None):
        if mode not in DISTILLATION_MODES:
            raise ConfigError(f"config mvi.distillation.mode = {mode!r}: expected one of {DISTILLATION_MODES}")
        if mode == "joint" and teacher_objective is None:
            raise ValueError("joint distillation needs the teacher's objective")
        self.student, self.teacher, self.objective, self.mode = student, teacher, objective, mode
        self.teacher_objective = teacher_objective if mode == "joint" else None
        modules = {"model": student, "teacher": teacher, "objective": objective}
        if self.teacher_objective is not None:
            modules["teacher_objective"] = self.teacher_objective
        self.modules = nn.ModuleDict(modules)
        for p in teacher.parameters():
            p.requires_grad_(mode == "joint")

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = list(self.student.parameters())
        if self.mode == "joint":
            params += list(self.teacher.parameters())
        return params

    def train_mode(self) -> None:
        self.student.train()
        self.teacher.train(self.mode == "joint")

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        out_s = self.student(batch["images"])
        with torch.set_grad_enabled(self.mode == "joint"):
            out_t = self.teacher(batch["images"], batch["clinical"])
        total, parts = self.objective(Step(batch["labels"], out_s, teacher=out_t, clinical=batch["clinical"]))
        if self.teacher_objective is not None:
            t_total, t_parts = self.teacher_objective(Step(batch["labels"], out_t, clinical=batch["clinical"]))
            total, parts = total + t_total, {**parts, **t_parts}
        return total, {**parts, "loss": total.item()}

    def logits(self, batch) -> Tensor:
        return self.student(batch["images"]).logits
