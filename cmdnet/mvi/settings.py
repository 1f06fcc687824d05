"""The settings one MVI training job depends on, assembled from the whole configuration.

The workflow passes exactly this to a teacher's or method's jobs (`params: settings`), so changing one method's
settings reruns only that method's jobs (Snakemake reruns a job whose params changed); Python callers build the
same thing from `cmdnet.config.default_config()` or their own config.
"""

from __future__ import annotations

from collections.abc import Mapping

from cmdnet.config import deep_merge
from cmdnet.mvi.methods import METHODS, TEACHERS, spec
from cmdnet.mvi.models import MODEL_REGISTRY


def job_settings(config: Mapping, name: str) -> dict:
    """`model`, `training` (a teacher's with `mvi.teacher_training` over it), `objective` (the terms of its
    objective), with its `mvi.overrides` entry merged in;
    `seed`, `phases`; for a distilled method `distillation` and, in joint mode, the teacher's
    objective as `teacher_objective`."""
    mvi = config["mvi"]
    entry = spec(name)
    override = (mvi.get("overrides") or {}).get(name) or {}
    is_teacher = name in TEACHERS
    model = deep_merge(mvi["model"], override.get("model"))
    # Another network's option section (mvi.model.m2net, ...) is not this job's business: it reruns nothing here.
    # A teacher's section reaches teachers and, in joint mode, the methods that train one.
    own = {getattr(entry, "model", "teacher")}
    if is_teacher or (name in METHODS and METHODS[name].distilled and mvi["distillation"]["mode"] == "joint"):
        own.add("teacher")
    model = {k: v for k, v in model.items() if k not in MODEL_REGISTRY or k in own}
    training = deep_merge(mvi["training"], mvi.get("teacher_training") if is_teacher else None)
    settings = {"model": model,
                "training": deep_merge(training, override.get("training")),
                "objective": deep_merge(mvi["objectives"][entry.objective], override.get("objective")),
                "seed": config["seed"], "phases": list(mvi["phases"])}
    if name in METHODS and METHODS[name].distilled:
        settings["distillation"] = dict(mvi["distillation"])
        if mvi["distillation"]["mode"] == "joint":
            settings["teacher_objective"] = mvi["objectives"][TEACHERS[entry.teacher].objective]
    return settings
