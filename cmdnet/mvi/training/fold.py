"""One fold of the MVI experiment: train a teacher or a method, and predict the held-out fold.

Fold isolation, stated once: a test fold is one (repeat, fold) of the folds table; its training patients are every
other patient of that repeat; the inner validation split (model selection) is drawn from them when the folds are
made (`cmdnet.data.folds.inner_splits`), the same for every method and teacher of the fold; the clinical
imputer/scaler is fitted on them; the teacher a student learns from was trained on exactly the same training
patients. Test patients are only ever passed to `predict_fold`.

`settings` is what the workflow passes for one teacher or method (`mvi_training_params` in `rules/common.smk`):
`model`, `training` (the `mvi` config sections with that name's overrides merged in), `objective` (its terms),
`teacher_objective` (the teacher's terms, for joint distillation), `distillation` (`mode`), `seed` and `phases`.

A model file (`model.pt`) holds plain data only (loadable with `weights_only=True`): the registry name and keyword
arguments to rebuild the network, its weights, the phases, the fitted clinical preprocessor (teachers), the fold's
patient lists, the selected epoch's inner-validation probabilities and the cmdnet version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from cmdnet import __version__
from cmdnet.atomic import atomic_path
from cmdnet.data.clinical import ClinicalPreprocessor, load_dictionary
from cmdnet.data.datasets import load_dataset
from cmdnet.data.folds import FoldSplit, Partitions, fold_split
from cmdnet.device import resolve_device
from cmdnet.labels import MVI_CLASSES, outcome
from cmdnet.mvi.losses.terms import TermContext
from cmdnet.mvi.methods import TeacherSpec, method_spec, phase_indices, teacher_spec
from cmdnet.mvi.models import build_model, load_pretrained, network_options
from cmdnet.mvi.objective import DistillationTask, SupervisedTask, build_objective
from cmdnet.mvi.training.data import FoldArrays
from cmdnet.mvi.training.loop import TrainConfig, fit, predict_probs
from cmdnet.mvi.training.stagewise import fit_stagewise, is_stagewise
from cmdnet.seeds import derive_seed

PROB_COLUMNS = [f"prob_{c}" for c in range(len(MVI_CLASSES))]


@dataclass
class MviData:
    """The whole cohort's MVI inputs: images `(N, P, Z, Y, X)` in `phases` order, labels, clinical table."""

    images: np.ndarray
    phases: tuple[str, ...]
    patient_ids: list[str]
    labels: pd.Series                        # patient_id -> 0/1/2
    clinical: pd.DataFrame | None = None     # cleaned clinical table indexed by patient_id
    dictionary: pd.DataFrame | None = None

    def arrays(self, ids: list[str], phases: tuple[str, ...], clinical: np.ndarray | None = None) -> FoldArrays:
        index = {p: i for i, p in enumerate(self.patient_ids)}
        rows = np.array([index[p] for p in ids], dtype=np.int64)
        images = self.images[rows][:, phase_indices(phases, self.phases)]
        labels = np.array(self.labels.loc[ids], dtype=np.int64)
        return FoldArrays(images, labels, list(ids), clinical)

    def clinical_of(self, ids: list[str], preprocessor: ClinicalPreprocessor) -> np.ndarray:
        if self.clinical is None:
            raise ValueError("this job needs the cleaned clinical table, but none was given")
        return preprocessor.transform(self.clinical.loc[ids].reset_index())


def load_mvi_data(dataset: str | Path, labels: str | Path, phases: list[str], *,
                  clinical: str | Path | None = None, dictionary: str | Path | None = None) -> MviData:
    data = load_dataset(dataset)
    ids = [str(p) for p in data["patient_id"]]
    table = pd.read_parquet(clinical).astype({"patient_id": str}).set_index("patient_id") if clinical else None
    return MviData(data["images"].astype(np.float32, copy=False), tuple(phases), ids, outcome(labels, "mvi", ids),
                   table, load_dictionary(dictionary) if dictionary else None)


def fingerprint(*parts) -> str:
    """A short hash of everything a job's result depends on (for checkpoints; never for selection)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def arrays_digest(*arrays: FoldArrays) -> str:
    """A hash of the images, labels and clinical values a job trains on: a checkpoint of other data is stale."""
    h = hashlib.sha256()
    for a in arrays:
        for part in (a.images, a.labels, a.clinical):
            if part is not None:
                h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()[:16]


def model_kwargs(model_cfg: dict, phases: tuple[str, ...], in_shape_zyx: tuple[int, ...], *, builder: str,
                 use_ca: bool, n_clinical: int | None = None) -> dict:
    """Keyword arguments for `build_model` from the `mvi.model` config section."""
    kwargs = {"in_shape_zyx": list(in_shape_zyx), "phases": list(phases), "width": model_cfg["width"],
              "feature_dim": model_cfg["feature_dim"], "norm": model_cfg["norm"]}
    if builder in ("student", "teacher"):
        kwargs["use_ca"] = use_ca
        kwargs["ca_kwargs"] = dict(model_cfg.get("cross_attention", {}))
    if n_clinical is not None:
        kwargs["n_clinical"] = n_clinical
    return kwargs


def teacher_kwargs(spec: TeacherSpec, model_cfg: dict, in_shape_zyx: tuple[int, ...], n_clinical: int) -> dict:
    """A teacher's constructor arguments: the shared ones, `mvi.model.teacher`, then its registry entry's options."""
    kwargs = model_kwargs(model_cfg, spec.phases, in_shape_zyx, builder="teacher", use_ca=spec.use_ca,
                          n_clinical=n_clinical)
    kwargs.update({**network_options("teacher", model_cfg)[0], **spec.model_options})
    return kwargs


def _build(builder: str, kwargs: dict, seed: int) -> torch.nn.Module:
    """A network initialised from its own seed (a teacher and its student never share initial weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(builder, **kwargs)


def _objective(terms: dict, labels: np.ndarray, cfg: TrainConfig, where: str, prefix: str = ""):
    context = TermContext(train_labels=labels, n_classes=len(MVI_CLASSES), training=cfg)
    return build_objective(terms, context, where, prefix=prefix)


def _save_model(path: Path, *, builder: str, kwargs: dict, model: torch.nn.Module, meta: dict) -> None:
    payload = {"cmdnet_version": __version__, "builder": builder, "kwargs": kwargs,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **meta}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(payload["builder"], **payload["kwargs"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def _write_history(history: pd.DataFrame, path: Path, best_epoch: int) -> None:
    if "selected" not in history:  # a stage-wise history marks each stage's selected epoch itself
        history = history.assign(selected=history["epoch"] == best_epoch)
    with atomic_path(path) as tmp:
        history.to_csv(tmp, index=False)


def _fold_meta(kind: str, name: str, phases, repeat: int, fold: int, split: FoldSplit, result, cfg) -> dict:
    return {"kind": kind, "name": name, "phases": list(phases), "repeat": repeat, "fold": fold,
            "train_ids": split.train, "val_ids": split.val, "best_epoch": result.best_epoch,
            "val_probs": np.asarray(result.val_probs, dtype=float).tolist(),
            "train_config": json.dumps(cfg.as_dict())}


def _teacher_model(spec: TeacherSpec, data: MviData, settings: dict, split: FoldSplit, repeat: int, fold: int,
                   name: str) -> tuple[torch.nn.Module, dict, ClinicalPreprocessor]:
    """A fresh teacher for this fold and its clinical preprocessor fitted on the fold's training patients."""
    if data.clinical is None or data.dictionary is None:
        raise ValueError("a teacher needs the cleaned clinical table and the clinical dictionary")
    preprocessor = ClinicalPreprocessor(data.dictionary).fit(data.clinical.loc[split.train].reset_index())
    kwargs = teacher_kwargs(spec, settings["model"], data.images.shape[2:], len(preprocessor.feature_names))
    model = _build("teacher", kwargs, derive_seed(settings["seed"], "init", name, repeat, fold))
    return model, kwargs, preprocessor


def train_teacher_fold(data: MviData, partitions: Partitions, name: str, repeat: int, fold: int, settings: dict, *,
                       out_model: str | Path, out_history: str | Path, checkpoint: str | Path | None = None,
                       progress: Callable[[str], None] = print) -> dict:
    """Train teacher `name` (images + clinical) on one test fold's training patients, with `mvi.objectives.teacher`."""
    spec = teacher_spec(name)
    cfg = TrainConfig.from_dict(settings["training"])
    split = partitions.split(repeat, fold)
    model, kwargs, preprocessor = _teacher_model(spec, data, settings, split, repeat, fold, name)
    train = data.arrays(split.fit, spec.phases, data.clinical_of(split.fit, preprocessor))
    val = data.arrays(split.val, spec.phases, data.clinical_of(split.val, preprocessor))
    objective = _objective(settings["objective"], train.labels, cfg, f"mvi.objectives.{spec.objective}")
    task = SupervisedTask(model, objective, uses_clinical=True)
    result = fit(task, train, val, cfg, seed=derive_seed(settings["seed"], "loop", name, repeat, fold),
                 checkpoint_path=checkpoint, progress=progress, label=f"[{name} repeat {repeat} fold {fold}]",
                 fingerprint=fingerprint("teacher", name, repeat, fold, settings, split.fit, split.val,
                                         arrays_digest(train, val)))
    meta = {**_fold_meta("teacher", name, spec.phases, repeat, fold, split, result, cfg),
            "clinical_preprocessor": json.dumps(preprocessor.to_dict())}
    _save_model(Path(out_model), builder="teacher", kwargs=kwargs, model=model, meta=meta)
    _write_history(result.history, Path(out_history), result.best_epoch)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)  # done: a later run must start afresh
    return {"best_epoch": result.best_epoch, "n_fit": len(split.fit), "n_val": len(split.val),
            "n_test": len(split.test)}


def _frozen_teacher(path: Path, repeat: int, fold: int, split: FoldSplit):
    teacher, payload = load_model(path)
    if (payload.get("repeat", 0), payload["fold"]) != (repeat, fold) or sorted(payload["train_ids"]) != split.train:
        raise ValueError(f"teacher {path} was trained on other patients than repeat {repeat} fold {fold}'s "
                         "training set")
    return teacher, ClinicalPreprocessor.from_dict(json.loads(payload["clinical_preprocessor"]))


def train_method_fold(data: MviData, partitions: Partitions, name: str, repeat: int, fold: int, settings: dict, *,
                      out_model: str | Path, out_history: str | Path, teacher: str | Path | None = None,
                      checkpoint: str | Path | None = None, progress: Callable[[str], None] = print) -> dict:
    """Train one image-only method (baseline, student, or distilled student) on one test fold.

    A distilled method learns from the same fold's pre-trained `teacher` model file (`mvi.distillation.mode:
    offline`), or trains a fresh teacher alongside (`joint`, no file)."""
    spec = method_spec(name)
    cfg = TrainConfig.from_dict(settings["training"])
    split = partitions.split(repeat, fold)
    kwargs = model_kwargs(settings["model"], spec.phases, data.images.shape[2:], builder=spec.model,
                          use_ca=spec.use_ca)
    options, pretrained = network_options(spec.model, settings["model"])  # mvi.model.<network>
    kwargs.update(options)
    model = _build(spec.model, kwargs, derive_seed(settings["seed"], "init", name, repeat, fold))
    fp_parts: list[Any] = [name, repeat, fold, settings, split.fit, split.val]
    if pretrained is not None:
        load_pretrained(model, pretrained)
        fp_parts.append(hashlib.sha256(Path(pretrained).read_bytes()).hexdigest())
    where = f"mvi.objectives.{spec.objective}"
    if not spec.distilled:
        train, val = data.arrays(split.fit, spec.phases), data.arrays(split.val, spec.phases)
        task = SupervisedTask(model, _objective(settings["objective"], train.labels, cfg, where), uses_clinical=False)
    else:
        mode = settings["distillation"]["mode"]
        if mode == "joint":
            teacher_net, _, preprocessor = _teacher_model(teacher_spec(spec.teacher), data, settings, split,
                                                          repeat, fold, f"{spec.teacher}@{name}")
        else:
            if teacher is None:
                raise ValueError(f"method {name} distils from teacher {spec.teacher}: give its model file")
            teacher_net, preprocessor = _frozen_teacher(Path(teacher), repeat, fold, split)
            fp_parts.append(hashlib.sha256(Path(teacher).read_bytes()).hexdigest())
        train = data.arrays(split.fit, spec.phases, data.clinical_of(split.fit, preprocessor))
        val = data.arrays(split.val, spec.phases)
        objective = _objective(settings["objective"], train.labels, cfg, where)
        teacher_objective = (_objective(settings["teacher_objective"], train.labels, cfg, "mvi.objectives.teacher",
                                        prefix="teacher_") if mode == "joint" else None)
        task = DistillationTask(model, teacher_net, objective, mode=mode, teacher_objective=teacher_objective)
    fp_parts.append(arrays_digest(train, val))
    run = fit_stagewise if is_stagewise(model) else fit   # Concat_2S: its stages one after another
    result = run(task, train, val, cfg, seed=derive_seed(settings["seed"], "loop", name, repeat, fold),
                 checkpoint_path=checkpoint, progress=progress, label=f"[{name} repeat {repeat} fold {fold}]",
                 fingerprint=fingerprint(*fp_parts))
    meta = _fold_meta("method", name, spec.phases, repeat, fold, split, result, cfg)
    _save_model(Path(out_model), builder=spec.model, kwargs=kwargs, model=model, meta=meta)
    _write_history(result.history, Path(out_history), result.best_epoch)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)  # done: a later run must start afresh
    return {"best_epoch": result.best_epoch, "n_fit": len(split.fit), "n_val": len(split.val),
            "n_test": len(split.test)}


class _EvalOnly:
    """Adapter so `predict_probs` can run a bare model (with or without the clinical vector)."""

    def __init__(self, model: torch.nn.Module, uses_clinical: bool):
        self.modules = torch.nn.ModuleDict({"model": model})
        self.uses_clinical = uses_clinical

    def logits(self, batch):
        model = self.modules["model"]
        return (model(batch["images"], batch["clinical"]) if self.uses_clinical else model(batch["images"])).logits


def prediction_frame(ids: list[str], repeat: int, fold: int, labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """patient_id, repeat, fold, label, prob_0..prob_2: the frame of every MVI prediction file."""
    out = pd.DataFrame({"patient_id": ids, "repeat": repeat, "fold": fold, "label": labels})
    for c, column in enumerate(PROB_COLUMNS):
        out[column] = probs[:, c]
    return out


def predict_fold(model_path: str | Path, data: MviData, partitions: Partitions, *, device: str = "auto",
                 progress: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One fold model's out-of-fold predictions on its test patients, and its selected epoch's predictions on its
    inner validation split (for choosing thresholds without the test fold). Both frames: patient_id, repeat, fold,
    label, prob_0..prob_2."""
    model, payload = load_model(model_path)
    repeat, fold = payload.get("repeat", 0), payload["fold"]
    _, test_ids = fold_split(partitions.folds, fold, repeat=repeat)
    if set(test_ids) & set(payload["train_ids"]):
        raise AssertionError(f"{model_path}: test patients of repeat {repeat} fold {fold} were in its training set")
    phases = tuple(payload["phases"])
    clinical = None
    if payload["kind"] == "teacher":
        pre = ClinicalPreprocessor.from_dict(json.loads(payload["clinical_preprocessor"]))
        clinical = data.clinical_of(test_ids, pre)
    arrays = data.arrays(test_ids, phases, clinical)
    target = resolve_device(device, log=progress)
    model.to(target)
    probs = predict_probs(_EvalOnly(model, clinical is not None), arrays.tensors(target))
    val_ids = list(payload["val_ids"])
    validation = prediction_frame(val_ids, repeat, fold, np.array(data.labels.loc[val_ids], dtype=np.int64),
                        np.asarray(payload["val_probs"], dtype=float))
    return prediction_frame(test_ids, repeat, fold, arrays.labels, probs), validation
