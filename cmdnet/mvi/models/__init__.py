"""MVI networks: CMD-Net teacher/student (and their modules) and the Table-1 baselines.

`build_model(name, **kwargs)` assembles a network by registry name, so a method in the config is a name plus
keyword arguments:

    build_model("student", in_shape_zyx=(32, 64, 64), width=1.0)
    build_model("teacher", n_clinical=52, in_shape_zyx=(32, 64, 64), phases=("HBP",))

Options of one network (e.g. M2Net's `bilinear_dim`, Concat_2S's `stagewise`) live in the model config
section under the network's registry name (`mvi.model.m2net`, `mvi.model.concat2s`): `network_options`
reads and checks them; a `pretrained_weights` file there is loaded by `load_pretrained` after construction.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path

from torch import nn

from cmdnet.mvi.models.baselines import CNN3D, ConcatNet, LSTMNet
from cmdnet.mvi.models.teacher_student import ClinicalScales, MRIClinicalFusionEncoder, MRIEncoder, Student, Teacher
from cmdnet.mvi.models.concat2s import Concat2S
from cmdnet.mvi.models.cross_attention import CrossAttention
from cmdnet.mvi.models.m2net import M2Net
from cmdnet.mvi.models.output import ModelOutput
from cmdnet.mvi.models.stages import TrainingStage

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


PRETRAINED_KEY = "pretrained_weights"
_SHARED_KWARGS = frozenset({"in_shape_zyx", "phases", "width", "feature_dim", "norm", "n_classes"})


def network_options(name: str, model_cfg: Mapping) -> tuple[dict, str | None]:
    """The options of network `name` in a model config section (`model_cfg[name]`, e.g. `mvi.model.m2net`).

    Returns `(kwargs, pretrained_weights)`: constructor keyword arguments to add to the shared ones, and the
    path of a local weights file to load after construction (`None`: none). Keys the constructor does not
    take, or shared ones (width, feature_dim, ...), raise ValueError naming the key and the allowed ones.
    """
    options = dict(model_cfg.get(name) or {})
    pretrained = options.pop(PRETRAINED_KEY, None)
    factory = MODEL_REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODEL_REGISTRY))}")
    allowed = sorted(set(inspect.signature(factory).parameters) - _SHARED_KWARGS)
    for key in options:
        if key not in allowed:
            raise ValueError(f"model option {name}.{key} is not an option of {factory.__name__}; "
                             f"allowed: {', '.join([*allowed, PRETRAINED_KEY])}")
    if pretrained is not None and not hasattr(factory, "load_pretrained_backbones"):
        raise ValueError(f"model option {name}.{PRETRAINED_KEY}: {factory.__name__} takes no pretrained weights")
    return options, (None if pretrained is None else str(pretrained))


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load a local pretrained-weights file into `model`'s pretrained-capable parts (M2Net's 2D backbones)."""
    loader = getattr(model, "load_pretrained_backbones", None)
    if loader is None:
        raise ValueError(f"{type(model).__name__} takes no pretrained weights (given {path})")
    loader(path)


__all__ = [
    "CNN3D", "ClinicalScales", "Concat2S", "ConcatNet", "CrossAttention", "LSTMNet", "M2Net", "MODEL_REGISTRY",
    "MRIClinicalFusionEncoder", "MRIEncoder", "ModelOutput", "Student", "Teacher", "TrainingStage", "build_model",
    "load_pretrained", "network_options",
]
