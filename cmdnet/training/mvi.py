"""One fold of the MVI experiment: train a teacher or a method, and predict the held-out fold.

Fold isolation, stated once: for test fold k, the training patients are every patient not in fold k; the
inner validation split (model selection) is drawn from them; the clinical imputer/scaler is fitted on them;
the teacher a student learns from was trained on exactly the same training patients. Test patients are
only ever passed to `predict_fold`.

A model file (`model.pt`) holds plain data only (loadable with `weights_only=True`): the registry name and
keyword arguments to rebuild the network, its weights, the phases, the fitted clinical preprocessor (teachers),
the fold's patient lists and the cmdnet version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..atomic import atomic_path
from ..clinical import ClinicalPreprocessor, load_dictionary
from ..folds import fold_split, inner_validation_split
from ..losses import FocalLoss, class_balanced_alpha
from ..methods import MethodSpec, TeacherSpec, method as method_spec, phase_indices, teacher as teacher_spec
from ..models import build_model
from .data import FoldArrays
from .loop import N_CLASSES, TrainConfig, fit, predict_probs, resolve_device
from .tasks import DistillConfig, DistillationTask, SupervisedTask


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


def load_mvi_data(dataset_path: str | Path, labels_path: str | Path, phases: list[str], *,
                  clinical_path: str | Path | None = None, dictionary_path: str | Path | None = None) -> MviData:
    with np.load(dataset_path, allow_pickle=False) as d:
        images = d["images"].astype(np.float32, copy=False)
        ids = [str(p) for p in d["patient_id"]]
    table = pd.read_parquet(labels_path).set_index("patient_id")
    labels = table.loc[ids, "mvi"]
    if labels.isna().any():
        missing = labels[labels.isna()].index.tolist()
        raise ValueError(f"patients without an MVI label in {labels_path}: {missing[:10]}")
    clinical = pd.read_parquet(clinical_path).set_index("patient_id") if clinical_path else None
    dictionary = load_dictionary(dictionary_path) if dictionary_path else None
    return MviData(images, tuple(phases), ids, labels.astype(int), clinical, dictionary)


def model_kwargs(model_cfg: dict, phases: tuple[str, ...], in_shape_zyx: tuple[int, ...], *,
                 use_ca: bool, cmdnet_module: bool, n_clinical: int | None = None) -> dict:
    """Keyword arguments for `build_model` from the `mvi.model` config section."""
    kwargs = {"in_shape_zyx": list(in_shape_zyx), "phases": list(phases), "width": model_cfg["width"],
              "feature_dim": model_cfg["feature_dim"], "norm": model_cfg["norm"]}
    if cmdnet_module:
        kwargs["use_ca"] = use_ca
        kwargs["ca_kwargs"] = dict(model_cfg.get("cross_attention", {}))
    if n_clinical is not None:
        kwargs["n_clinical"] = n_clinical
        kwargs.update(model_cfg.get("teacher", {}))  # teacher-only options (cmdnet.models.Teacher), docs/teacher.md
    return kwargs


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


def _split(folds: pd.DataFrame, fold: int, labels: pd.Series, inner_fraction: float, seed: int):
    train_ids, test_ids = fold_split(folds, fold)
    fit_ids, val_ids = inner_validation_split(train_ids, labels.loc[train_ids], inner_fraction, seed + fold)
    return train_ids, test_ids, fit_ids, val_ids


def _focal(cfg: TrainConfig, labels: np.ndarray) -> FocalLoss:
    alpha = cfg.focal_alpha if cfg.focal_alpha is not None else class_balanced_alpha(labels, N_CLASSES)
    return FocalLoss(gamma=cfg.focal_gamma, alpha=alpha)


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
    history = history.assign(selected=history["epoch"] == best_epoch)
    with atomic_path(path) as tmp:
        history.to_csv(tmp, index=False)


def train_teacher_fold(data: MviData, folds: pd.DataFrame, fold: int, teacher_name: str, model_cfg: dict,
                       train_cfg: dict, *, seed: int, inner_fraction: float, out_model: Path, out_history: Path,
                       checkpoint_path: Path | None = None, progress: Callable[[str], None] = print) -> dict:
    """Train the teacher `teacher_name` on fold `fold`'s training patients (images + clinical)."""
    if data.clinical is None or data.dictionary is None:
        raise ValueError("a teacher needs the cleaned clinical table and the clinical dictionary")
    spec: TeacherSpec = teacher_spec(teacher_name)
    cfg = TrainConfig.from_dict(train_cfg)
    train_ids, test_ids, fit_ids, val_ids = _split(folds, fold, data.labels, inner_fraction, seed)
    preprocessor = ClinicalPreprocessor(data.dictionary).fit(data.clinical.loc[train_ids])
    train = data.arrays(fit_ids, spec.phases, preprocessor.transform(data.clinical.loc[fit_ids]))
    val = data.arrays(val_ids, spec.phases, preprocessor.transform(data.clinical.loc[val_ids]))
    kwargs = model_kwargs(model_cfg, spec.phases, data.images.shape[2:], use_ca=spec.use_ca,
                          cmdnet_module=True, n_clinical=len(preprocessor.feature_names))
    torch.manual_seed(seed + fold)
    model = build_model("teacher", **kwargs)
    task = SupervisedTask(model, _focal(cfg, train.labels), uses_clinical=True)
    label = f"[teacher {teacher_name} fold {fold}]"
    result = fit(task, train, val, cfg, seed=seed + fold, checkpoint_path=checkpoint_path, progress=progress,
                 label=label, fingerprint=fingerprint("teacher", teacher_name, fold, model_cfg, train_cfg, seed,
                                                      fit_ids, val_ids, arrays_digest(train, val)))
    meta = {"kind": "teacher", "name": teacher_name, "phases": list(spec.phases), "fold": fold,
            "train_ids": train_ids, "val_ids": val_ids, "best_epoch": result.best_epoch,
            "clinical_preprocessor": json.dumps(preprocessor.to_dict()), "train_config": json.dumps(cfg.as_dict())}
    _save_model(out_model, builder="teacher", kwargs=kwargs, model=model, meta=meta)
    _write_history(result.history, out_history, result.best_epoch)
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)  # done: a later run must start afresh
    return {"best_epoch": result.best_epoch, "n_train": len(fit_ids), "n_val": len(val_ids), "n_test": len(test_ids)}


def _teacher_inputs(teacher_path: Path, data: MviData, fold: int, train_ids: list[str]):
    teacher, payload = load_model(teacher_path)
    if payload["fold"] != fold or sorted(payload["train_ids"]) != sorted(train_ids):
        raise ValueError(f"teacher {teacher_path} was trained on other patients than fold {fold}'s training set")
    preprocessor = ClinicalPreprocessor.from_dict(json.loads(payload["clinical_preprocessor"]))
    return teacher, preprocessor


def train_method_fold(data: MviData, folds: pd.DataFrame, fold: int, method_name: str, model_cfg: dict,
                      train_cfg: dict, distill_cfg: dict, *, seed: int, inner_fraction: float, out_model: Path,
                      out_history: Path, teacher_path: Path | None = None, checkpoint_path: Path | None = None,
                      progress: Callable[[str], None] = print) -> dict:
    """Train one image-only method (baseline, student, or distilled student) on fold `fold`."""
    spec: MethodSpec = method_spec(method_name)
    cfg = TrainConfig.from_dict(train_cfg)
    train_ids, test_ids, fit_ids, val_ids = _split(folds, fold, data.labels, inner_fraction, seed)
    is_cmdnet = spec.model == "student"
    kwargs = model_kwargs(model_cfg, spec.phases, data.images.shape[2:], use_ca=spec.use_ca, cmdnet_module=is_cmdnet)
    torch.manual_seed(seed + fold)
    model = build_model(spec.model, **kwargs)
    fp_parts = [method_name, fold, model_cfg, train_cfg, seed, fit_ids, val_ids]
    if spec.teacher is None:
        train, val = data.arrays(fit_ids, spec.phases), data.arrays(val_ids, spec.phases)
        task = SupervisedTask(model, _focal(cfg, train.labels), uses_clinical=False)
    else:
        if teacher_path is None:
            raise ValueError(f"method {method_name} distils from teacher {spec.teacher}: give its model file")
        teacher, preprocessor = _teacher_inputs(Path(teacher_path), data, fold, train_ids)
        train = data.arrays(fit_ids, spec.phases, preprocessor.transform(data.clinical.loc[fit_ids]))
        val = data.arrays(val_ids, spec.phases)
        task = DistillationTask(model, teacher, spec, _focal(cfg, train.labels), DistillConfig.from_dict(distill_cfg))
        fp_parts += [distill_cfg, hashlib.sha256(Path(teacher_path).read_bytes()).hexdigest()]
    label = f"[{method_name} fold {fold}]"
    fp_parts.append(arrays_digest(train, val))
    result = fit(task, train, val, cfg, seed=seed + fold, checkpoint_path=checkpoint_path, progress=progress,
                 label=label, fingerprint=fingerprint(*fp_parts))
    meta = {"kind": "method", "name": method_name, "phases": list(spec.phases), "fold": fold,
            "train_ids": train_ids, "val_ids": val_ids, "best_epoch": result.best_epoch,
            "train_config": json.dumps(cfg.as_dict())}
    _save_model(out_model, builder=spec.model, kwargs=kwargs, model=model, meta=meta)
    _write_history(result.history, out_history, result.best_epoch)
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)  # done: a later run must start afresh
    return {"best_epoch": result.best_epoch, "n_train": len(fit_ids), "n_val": len(val_ids), "n_test": len(test_ids)}


class _EvalOnly:
    """Adapter so `predict_probs` can run a bare model (with or without the clinical vector)."""

    def __init__(self, model: torch.nn.Module, uses_clinical: bool):
        self.modules = torch.nn.ModuleDict({"model": model})
        self.uses_clinical = uses_clinical

    def logits(self, batch):
        model = self.modules["model"]
        return (model(batch["images"], batch["clinical"]) if self.uses_clinical else model(batch["images"])).logits


def predict_fold(model_path: str | Path, data: MviData, folds: pd.DataFrame, fold: int) -> pd.DataFrame:
    """Out-of-fold predictions of one fold's model on that fold's test patients."""
    model, payload = load_model(model_path)
    if payload["fold"] != fold:
        raise ValueError(f"{model_path} belongs to fold {payload['fold']}, not {fold}")
    _, test_ids = fold_split(folds, fold)
    if set(test_ids) & set(payload["train_ids"]):
        raise AssertionError(f"{model_path}: test patients of fold {fold} were in its training set")
    phases = tuple(payload["phases"])
    clinical = None
    if payload["kind"] == "teacher":
        pre = ClinicalPreprocessor.from_dict(json.loads(payload["clinical_preprocessor"]))
        clinical = pre.transform(data.clinical.loc[test_ids])
    arrays = data.arrays(test_ids, phases, clinical)
    device = resolve_device("auto")
    model.to(device)
    probs = predict_probs(_EvalOnly(model, clinical is not None), arrays.tensors(device))
    out = pd.DataFrame({"patient_id": test_ids, "fold": fold, "label": arrays.labels})
    for c in range(probs.shape[1]):
        out[f"prob_{c}"] = probs[:, c]
    return out
