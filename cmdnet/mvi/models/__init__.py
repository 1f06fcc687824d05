"""MVI networks: CMD-Net teacher/student (and their modules) and the Table-1 baselines.

`build_model(name, **kwargs)` assembles a network by registry name, so a method in the config is a name plus
keyword arguments:

    build_model("student", in_shape_zyx=(32, 64, 64), width=1.0)
    build_model("teacher", n_clinical=52, in_shape_zyx=(32, 64, 64), phases=("HBP",))
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cmdnet.mvi.models.baselines import CNN3D, Concat2S, ConcatNet, LSTMNet, M2Net
from cmdnet.mvi.models.teacher_student import ClinicalScales, MRIClinicalFusionEncoder, MRIEncoder, Student, Teacher
from cmdnet.mvi.models.cross_attention import CrossAttention
from cmdnet.mvi.models.output import ModelOutput

MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "teacher": Teacher,
    "student": Student,
    "concat": ConcatNet,
    "cnn3d": CNN3D,
    "lstm": LSTMNet,
    "m2net": M2Net,
    "concat2s": Concat2S,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """The network registered as `name`, constructed with `kwargs`. Unknown name -> ValueError listing names."""
    try:
        factory = MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODEL_REGISTRY))}") from None
    return factory(**kwargs)


__all__ = [
    "CNN3D", "ClinicalScales", "Concat2S", "ConcatNet", "CrossAttention", "LSTMNet", "M2Net", "MODEL_REGISTRY",
    "MRIClinicalFusionEncoder", "MRIEncoder", "ModelOutput", "Student", "Teacher", "build_model",
]
