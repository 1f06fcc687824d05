"""The networks a configuration trains, built as its training jobs build them, and how many samples each sees.

Shared by the benchmarks that size the paper configuration: `estimate_paper_cost.py` (FLOPs) and `gpu_smoke.py`
(measured training steps).

- MVI: every teacher the configured methods distil from, then every method of `mvi.methods`, each with the settings
  its jobs get (`cmdnet.mvi.settings.job_settings`, overrides merged in) and the constructor arguments its training
  job uses (`cmdnet.mvi.training.fold.model_kwargs` plus `mvi.model.<network>` options; pretrained weights are not
  loaded). A distilled method keeps the teacher it learns from: the teacher's own network in offline distillation,
  one built from the method's settings in joint distillation, as `train_method_fold` does.
- Grading: every (method, dim) of `grade.methods` x `grade.dims`, with `GradeTrainConfig.model_kwargs()`.

Training samples of one network in the whole configuration (validation and prediction left out):
- MVI: fit patients per fold (`synthetic.n_patients` x (k - 1) / k x (1 - inner validation fraction)) x epochs x
  k folds x repeats (`folds.mvi_k`, `folds.mvi_repeats`);
- grading: iterations x batch size x k folds x repeats (`folds.grade_k`, `folds.grade_repeats`); DCCA's
  correlation pre-training (`dcca_pretrain_iterations` batches of one sample per training patient) is left out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cmdnet.grade.networks import build_grade_model
from cmdnet.grade.train import PATCH, GradeTrainConfig
from cmdnet.labels import MVI_CLASSES
from cmdnet.mvi.methods import TEACHERS, method_spec, teachers_needed
from cmdnet.mvi.models import build_model, network_options
from cmdnet.mvi.settings import job_settings
from cmdnet.mvi.training.fold import model_kwargs, teacher_kwargs

PAPER_CONFIG = REPO / "config" / "paper.yaml"
N_CLINICAL = 60  # clinical features after one-hot encoding and missing-value indicators (the teachers' input)


def crop_shape_zyx(config: dict) -> tuple[int, int, int]:
    x, y, z = config["roi"]["crop_shape_xyz"]
    return z, y, x


@dataclass(frozen=True)
class MviNetwork:
    """One MVI teacher or method as its training job builds it."""

    name: str                             # registry name (cmdnet.mvi.methods)
    builder: str                          # cmdnet.mvi.models.build_model name
    kwargs: dict                          # constructor arguments
    settings: dict                        # what the workflow passes its jobs (job_settings)
    teacher: MviNetwork | None = None     # the network a distilled method learns from

    @property
    def reads_clinical(self) -> bool:
        return self.builder == "teacher" or self.teacher is not None

    def build(self) -> torch.nn.Module:
        return build_model(self.builder, **self.kwargs)

    def batch(self, size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """A random batch as the training loop passes it: images (B, P, Z, Y, X), labels, and clinical (B, F)
        where the network or its teacher reads it."""
        phases = len(self.kwargs["phases"])
        out = {"images": torch.randn(size, phases, *self.kwargs["in_shape_zyx"], device=device),
               "labels": torch.arange(size, device=device) % len(MVI_CLASSES)}
        if self.reads_clinical:
            n_clinical = (self.teacher or self).kwargs["n_clinical"]
            out["clinical"] = torch.randn(size, n_clinical, device=device)
        return out

    def forward_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The arguments of this network's own forward pass (a teacher also takes the clinical vector)."""
        return (batch["images"], batch["clinical"]) if self.builder == "teacher" else (batch["images"],)


def mvi_networks(config: dict, n_clinical: int = N_CLINICAL) -> list[MviNetwork]:
    """The teachers the configured methods need, then the methods, in the workflow's order."""
    shape = crop_shape_zyx(config)
    methods = [m for m in config["mvi"]["methods"] if not method_spec(m).clinical_only]   # networks only

    def teacher_network(name: str, settings: dict) -> MviNetwork:
        kwargs = teacher_kwargs(TEACHERS[name], settings["model"], shape, n_clinical)
        return MviNetwork(name, "teacher", kwargs, settings)

    teachers = {name: teacher_network(name, job_settings(config, name)) for name in teachers_needed(methods)}
    networks = list(teachers.values())
    for name in methods:
        spec = method_spec(name)
        settings = job_settings(config, name)
        kwargs = model_kwargs(settings["model"], spec.phases, shape, builder=spec.model, use_ca=spec.use_ca)
        kwargs.update(network_options(spec.model, settings["model"])[0])
        teacher = None
        if spec.distilled:
            joint = settings["distillation"]["mode"] == "joint"
            teacher = teacher_network(spec.teacher, settings) if joint else teachers[spec.teacher]
        networks.append(MviNetwork(name, spec.model, kwargs, settings, teacher))
    return networks


def mvi_fit_patients(config: dict) -> float:
    """Patients one MVI job trains on (its test fold and inner validation split left out)."""
    n, k = config["synthetic"]["n_patients"], config["folds"]["mvi_k"]
    return n * (k - 1) / k * (1 - config["folds"]["inner_validation_fraction"])


def mvi_training_samples(config: dict, network: MviNetwork) -> float:
    """Samples `network` trains on in the whole configuration: fit patients x epochs x folds x repeats."""
    folds = config["folds"]
    return mvi_fit_patients(config) * network.settings["training"]["epochs"] * folds["mvi_k"] * folds["mvi_repeats"]


@dataclass(frozen=True)
class GradeNetwork:
    """One (method, dim) model of the grading experiment."""

    method: str
    dim: str
    kwargs: dict

    @property
    def name(self) -> str:
        return f"{self.method}/{self.dim}"

    def build(self) -> torch.nn.Module:
        return build_grade_model(self.method, self.dim, **self.kwargs)

    def samples(self, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Random model inputs: 16^3 patches (3d) or 16x16 slices (2d), without the channel axis."""
        return torch.randn(size, *(PATCH,) * (3 if self.dim == "3d" else 2), device=device)


def grade_networks(config: dict) -> list[GradeNetwork]:
    kwargs = GradeTrainConfig.from_dict(config["grade"]["training"]).model_kwargs()
    grade = config["grade"]
    return [GradeNetwork(method, dim, kwargs) for dim in grade["dims"] for method in grade["methods"]]


def grade_training_samples(config: dict) -> int:
    """Samples one grading model trains on in the whole configuration: iterations x batch x folds x repeats."""
    training, folds = config["grade"]["training"], config["folds"]
    return training["iterations"] * training["batch_size"] * folds["grade_k"] * folds["grade_repeats"]

