"""Training of the grading models on one (repeat, fold) and patient-level prediction.

As in the paper (Sect. 2.5): end to end, Adam, learning rate lr0 decayed by 0.99 (staircase: every
`decay_every` iterations, lr = lr0 * 0.99 ** (iteration // decay_every)), a fixed number of iterations
(paper: 15000). No early stopping and no model selection: the test patients are only predicted at the end.

Samples: 3D models see the 16^3 patches; 2D models see 16x16 axial slices (the (y, x) planes of the
(z, y, x) patches), by default all 16 slices of every patch (`slices_2d="all"`), or only the central one
(`"central"`, z = 8). Batches are drawn patient-balanced: each element picks a training patient uniformly,
then one of that patient's samples uniformly, so that patients with large tumours (many patches) do not
dominate. A patient's prediction is the mean over all its samples (patches, or slices) of the softmax
probability of high grade.

Loss per method (`cmdnet.grade.methods`): protocol "joint": CE + w * aux from the first iteration, w the
configured `aux_weight` unless the method fixes it (`cifa_noaux`: 0). Protocol "dcca_pretrain" (Yao et al.
2017): `dcca_pretrain_iterations` of the DCCA loss alone on patient-complete batches (one sample of every
training patient, so the covariances see every distinct patient once), then `iterations` of the CE alone.

Each (method, dim) model is trained separately, with its own seed derived from (seed, method, dim), so a
model's numbers do not depend on which other methods are configured; all of them run in one call (one
process) because these small models are overhead-bound. One model's failure (non-finite loss, a failed
factorisation) is recorded with its message and does not stop the others. With a checkpoint path, the state
is saved after every finished model and every `checkpoint_every` iterations; a restarted call skips the
finished models and continues the unfinished one from its last checkpoint, to the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from cmdnet.atomic import atomic_path
from cmdnet.config import default_field, parse_section
from cmdnet.device import conv3d_channels_last, resolve_device
from cmdnet.errors import CohortError, InputError
from cmdnet.grade.dcca import heldout_canonical_correlations
from cmdnet.grade.fusion import CIFAHead, DCCAHead
from cmdnet.grade.methods import grade_method
from cmdnet.grade.networks import DIMS, GradeModel, build_grade_model
from cmdnet.seeds import derive_seed, numpy_rng

PATCH = 16
PREDICTION_COLUMNS = ["method", "dim", "patient_id", "label", "prob_high", "error"]
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class GradeTrainConfig:
    """Training and architecture settings shared by all methods of one fold: `grade.training` (config.yaml owns the
    defaults), plus a few constants of the heads that are not settings of the workflow."""

    iterations: int = default_field("grade.training.iterations")
    batch_size: int = default_field("grade.training.batch_size")
    lr: float = default_field("grade.training.lr")
    lr_decay: float = default_field("grade.training.lr_decay")
    decay_every: int = default_field("grade.training.decay_every")
    local_channels: tuple[int, ...] = default_field("grade.training.local_channels")
    nonlocal_channels: int = default_field("grade.training.nonlocal_channels")
    nonlocal_inter_channels: int = default_field("grade.training.nonlocal_inter_channels")
    nonlocal_subsample: bool = default_field("grade.training.nonlocal_subsample")
    feature_dim: int = default_field("grade.training.feature_dim")
    common_dim: int = default_field("grade.training.common_dim")
    cifa_phi: tuple[float, float] = (1.0, 1.0)
    cifa_theta: tuple[float, float] = (1.0, 1.0)
    ortho_weight: float = 1.0
    dcca_dim: int = default_field("grade.training.dcca_dim")
    dcca_r1: float = 1e-3
    dcca_r2: float = 1e-3
    dcca_pretrain_iterations: int = default_field("grade.training.dcca_pretrain_iterations")
    aux_weight: float = default_field("grade.training.aux_weight")
    slices_2d: str = default_field("grade.training.slices_2d")
    patches_per_patient: int | None = default_field("grade.training.patches_per_patient")
    eval_batch_size: int = 256
    seed: int = 0
    device: str = default_field("grade.training.device")
    precision: str = default_field("grade.training.precision")
    channels_last: bool = default_field("grade.training.channels_last")
    checkpoint_every: int = default_field("grade.training.checkpoint_every")
    log_every: int = field(default=0)  # 0 = five progress lines per model

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"GradeTrainConfig: iterations must be >= 1, got {self.iterations}")
        if self.batch_size < 2:
            raise ValueError(f"GradeTrainConfig: batch_size must be >= 2 (batch-normalised features, DCCA "
                             f"covariances), got {self.batch_size}")
        if self.decay_every < 1 or not 0 < self.lr_decay <= 1 or self.lr <= 0:
            raise ValueError(f"GradeTrainConfig: need lr > 0, 0 < lr_decay <= 1, decay_every >= 1; got "
                             f"{self.lr}, {self.lr_decay}, {self.decay_every}")
        if self.slices_2d not in ("all", "central"):
            raise ValueError(f"GradeTrainConfig: slices_2d must be 'all' or 'central', got {self.slices_2d!r}")
        if self.device not in DEVICES:
            raise ValueError(f"GradeTrainConfig: device must be one of {DEVICES}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"GradeTrainConfig: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.dcca_pretrain_iterations < 0 or self.checkpoint_every < 0:
            raise ValueError(f"GradeTrainConfig: dcca_pretrain_iterations and checkpoint_every must be >= 0, got "
                             f"{self.dcca_pretrain_iterations}, {self.checkpoint_every}")
        if self.patches_per_patient is not None and self.patches_per_patient < 1:
            raise ValueError(f"GradeTrainConfig: patches_per_patient must be null or >= 1, got "
                             f"{self.patches_per_patient}")

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> GradeTrainConfig:
        """From a `grade.training` config section (lists become tuples); unknown keys are named."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in {**d, **overrides}.items()}
        return parse_section(cls, values, "grade.training")

    def model_kwargs(self) -> dict:
        keys = ("local_channels", "nonlocal_channels", "nonlocal_inter_channels", "nonlocal_subsample",
                "feature_dim", "common_dim", "cifa_phi", "cifa_theta", "ortho_weight", "dcca_dim", "dcca_r1",
                "dcca_r2")
        d = asdict(self)
        return {k: d[k] for k in keys}


def model_seed(seed: int, method: str, dim: str) -> int:
    """A model's own seed (independent of the method list and of Python's hash randomisation)."""
    return derive_seed(seed, "grade-model", method, dim)


def training_device(name: str, progress: Callable[[str], object] = print) -> torch.device:
    """The torch device for `grade.training.device` (auto | cpu | cuda): the shared device policy
    (`cmdnet.device.resolve_device`: `cuda` without a GPU stops here, before any data is read; the device is
    logged, with a warning when the job holds a GPU slot but trains on the CPU)."""
    return resolve_device(name, log=progress)


def patch_samples(patches: np.ndarray, dim: str, slices_2d: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Model inputs from patches (N, 16, 16, 16): (samples, index of each sample's patch).

    3d: the patches themselves. 2d: axial slices patches[:, z] -- all 16 per patch ((N*16, 16, 16), patch
    index repeated) or only the central z = 8 ((N, 16, 16)).
    """
    n = patches.shape[0]
    if dim == "3d":
        return patches, np.arange(n)
    if slices_2d == "central":
        return patches[:, patches.shape[1] // 2], np.arange(n)
    return patches.reshape(-1, *patches.shape[2:]), np.repeat(np.arange(n), patches.shape[1])


def subsample_patches(patch_patient: np.ndarray, per_patient: int | None, seed: int) -> np.ndarray:
    """Indices of at most `per_patient` patches of every patient, drawn without replacement (sorted).

    None keeps every patch. The draw depends on (seed, patient id) only, so a patient's subset does not depend
    on the other patients; the workflow passes a seed per repeat, so the subset is redrawn per repeat.
    """
    patch_patient = np.asarray(patch_patient).astype(str)
    if per_patient is None:
        return np.arange(len(patch_patient))
    keep = []
    for pid in dict.fromkeys(patch_patient.tolist()):
        own = np.flatnonzero(patch_patient == pid)
        if len(own) > per_patient:
            rng = numpy_rng(seed, "patient-patches", pid)
            own = rng.choice(own, per_patient, replace=False)
        keep.append(own)
    return np.sort(np.concatenate(keep))


def _check_inputs(patches: np.ndarray, patch_patient: np.ndarray, labels: dict[str, int],
                  train_ids: Sequence[str], test_ids: Sequence[str], methods: Sequence[tuple[str, str]]) -> None:
    if patches.ndim != 4 or patches.shape[1:] != (PATCH, PATCH, PATCH):
        raise InputError(f"patches must have shape (N, {PATCH}, {PATCH}, {PATCH}), got {patches.shape}")
    if patch_patient.shape != (patches.shape[0],):
        raise InputError(f"patch_patient must have shape ({patches.shape[0]},), got {patch_patient.shape}")
    overlap = sorted(set(train_ids) & set(test_ids))
    if overlap:
        raise InputError(f"{len(overlap)} patient(s) are both in the training and the test fold", patient=overlap[0])
    present = set(patch_patient.tolist())
    for pid in [*train_ids, *test_ids]:
        if pid not in labels:
            raise CohortError("no grade label", patient=pid)
        if labels[pid] not in (0, 1):
            raise CohortError(f"grade label must be 0 (low) or 1 (high), got {labels[pid]!r}", patient=pid)
        if pid not in present:
            raise CohortError("no 16^3 patch for this patient", patient=pid)
    bad = ~np.isfinite(patches).reshape(patches.shape[0], -1).all(axis=1)
    if bad.any():
        raise InputError("patch holds non-finite values", patient=str(patch_patient[np.flatnonzero(bad)[0]]))
    if len({labels[p] for p in train_ids}) < 2:
        raise InputError(f"the training patients ({len(train_ids)}) hold only one grade class")
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be a non-empty list of distinct (method, dim) pairs, got {methods!r}")
    for method, dim in methods:
        grade_method(method)
        if dim not in DIMS:
            raise ValueError(f"unknown dim {dim!r} of method {method!r}; dims {sorted(DIMS)}")


class _PatientBalancedSampler:
    """Draws batches of sample indices: a training patient uniformly, then one of its samples uniformly."""

    def __init__(self, sample_patient: np.ndarray, rng: np.random.Generator):
        order = np.argsort(sample_patient, kind="stable")
        _, self.starts, self.counts = np.unique(sample_patient[order], return_index=True, return_counts=True)
        self.order, self.rng = order, rng

    @property
    def n_patients(self) -> int:
        return len(self.starts)

    def _pick(self, p: np.ndarray) -> np.ndarray:
        within = np.floor(self.rng.random(len(p)) * self.counts[p]).astype(np.int64)
        return self.order[self.starts[p] + within]

    def __call__(self, batch_size: int) -> np.ndarray:
        return self._pick(self.rng.integers(len(self.starts), size=batch_size))

    def one_per_patient(self) -> np.ndarray:
        """One sample of every patient (a patient-complete batch, for covariance estimates)."""
        return self._pick(np.arange(len(self.starts)))


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")


def check_precision(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"grade.training.precision fp16 needs a CUDA device (gradient scaling); the training "
                         f"device is {device}: use fp32 or bf16")


class TrainingState:
    """Everything a resumed model needs to continue exactly: weights, optimiser, schedule, RNGs, step."""

    def __init__(self, model: GradeModel, config: GradeTrainConfig, rng: np.random.Generator,
                 device: torch.device):
        self.model, self.rng, self.step, self.extra = model, rng, 0, {}
        self.optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        self.schedule = torch.optim.lr_scheduler.StepLR(self.optimiser, step_size=config.decay_every,
                                                        gamma=config.lr_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimiser": self.optimiser.state_dict(),
                "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": self.step,
                "extra": self.extra}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step, self.extra = state["step"], state["extra"]


def train_model(method: str, dim: str, samples: torch.Tensor, targets: torch.Tensor, sample_patient: np.ndarray,
                config: GradeTrainConfig, progress: Callable[[str], object] = print, *,
                device: torch.device | None = None, resume: dict | None = None,
                save: Callable[[TrainingState], None] | None = None,
                after_pretraining: Callable[[GradeModel], dict] | None = None) -> tuple[GradeModel, dict]:
    """Train one (method, dim) model on float samples (M, 16, 16[, 16]) with int64 targets (M,).

    Returns (model in eval mode, extra): extra holds what `after_pretraining(model)` returned at the end of a
    DCCA pre-training phase. `resume`: a `TrainingState.state_dict()` to continue from; `save(state)` is
    called every `config.checkpoint_every` iterations. Raises FloatingPointError on a non-finite loss.
    """
    spec = grade_method(method)
    device = samples.device if device is None else device
    seed = model_seed(config.seed, method, dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_grade_model(method, dim, **config.model_kwargs())
    model.to(device).train()
    if config.channels_last and dim == "3d":
        conv3d_channels_last(model)
    state = TrainingState(model, config, np.random.default_rng(seed), device)
    sampler = _PatientBalancedSampler(sample_patient, state.rng)
    pretrain = config.dcca_pretrain_iterations if spec.protocol == "dcca_pretrain" else 0
    if pretrain and config.dcca_dim * 4 > sampler.n_patients:
        raise ValueError(f"{method}/{dim}: dcca_dim {config.dcca_dim} is not well below the {sampler.n_patients} "
                         f"distinct training patients of a correlation batch; use dcca_dim <= "
                         f"{sampler.n_patients // 4}")
    weight = spec.effective_aux_weight(config.aux_weight)
    if resume is not None:
        state.load_state_dict(resume)
        progress(f"{method}/{dim} on {device}: resuming after iteration {state.step} from the checkpoint")
    total = pretrain + config.iterations
    cross_entropy = nn.CrossEntropyLoss()
    log_every = config.log_every or max(1, total // 5)
    for step in range(state.step + 1, total + 1):
        pretraining = step <= pretrain
        if hasattr(model.head, "aux_enabled"):
            model.head.aux_enabled = pretraining or weight > 0
        idx = sampler.one_per_patient() if pretraining else sampler(config.batch_size)
        idx = torch.from_numpy(idx).to(samples.device)
        with _autocast(device, config.precision):
            out = model(samples[idx])
        if pretraining:   # correlation pre-training: the DCCA loss alone
            ce, loss = None, out.aux_loss
        else:
            ce = cross_entropy(out.logits.float(), targets[idx])
            loss = ce + weight * out.aux_loss if weight > 0 else ce
        if not torch.isfinite(loss):
            stage = "DCCA pre-training" if pretraining else f"cross-entropy {ce.item():.4g}"
            raise FloatingPointError(f"{method}/{dim}: non-finite loss at iteration {step} ({stage}, "
                                     f"aux {out.aux_loss.item():.4g})")
        state.optimiser.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimiser)
        state.scaler.update()
        if not pretraining:
            state.schedule.step()
        state.step = step
        if step == pretrain and after_pretraining is not None:
            state.extra["after_pretraining"] = after_pretraining(model)
            model.train()
        if step % log_every == 0 or step == total or step == pretrain:
            what = (f"DCCA pre-training {step}/{pretrain}, total correlation {-out.aux_loss.item():.4f}"
                    if pretraining else f"iteration {step - pretrain}/{config.iterations}, cross-entropy "
                    f"{ce.item():.4f}, aux {out.aux_loss.item():.4f} (weight {weight:g})")
            progress(f"{method}/{dim} on {device}: {what}, lr {state.optimiser.param_groups[0]['lr']:.3g}")
        if save is not None and config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
            save(state)
    return model.eval(), state.extra


@torch.no_grad()
def predict_samples(model: GradeModel, samples: torch.Tensor, batch_size: int = 256,
                    precision: str = "fp32") -> np.ndarray:
    """Softmax probability of high grade (class 1) for every sample, in eval mode."""
    model.eval()
    probs = []
    for i in range(0, samples.shape[0], batch_size):
        with _autocast(samples.device, precision):
            logits = model(samples[i:i + batch_size]).logits
        probs.append(torch.softmax(logits.float(), dim=1)[:, 1])
    return torch.cat(probs).double().cpu().numpy()


@torch.no_grad()
def _features(model: GradeModel, samples: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    feats = [model.features(samples[i:i + batch_size]) for i in range(0, samples.shape[0], batch_size)]
    return torch.cat([f[0] for f in feats]).double(), torch.cat([f[1] for f in feats]).double()


@torch.no_grad()
def dcca_correlations(model: GradeModel, train_samples: torch.Tensor, test_samples: torch.Tensor,
                      batch_size: int = 256) -> dict[str, list[float]]:
    """Canonical correlations of a DCCA model's two views: fitted on the training samples ("train") and
    evaluated on the held-out test samples ("heldout"), each per component, descending in training order."""
    if not isinstance(model.head, DCCAHead):
        raise ValueError(f"dcca_correlations needs a dcca model, got {model.method!r}")
    views = []
    for samples in (train_samples, test_samples):
        y1, y2 = _features(model, samples, batch_size)
        h1, h2 = model.head.projections(y1.float(), y2.float())
        views.append((h1.double().cpu().numpy(), h2.double().cpu().numpy()))
    train, held = heldout_canonical_correlations(*views[0], *views[1], model.head.r1, model.head.r2)
    return {"train": train.tolist(), "heldout": held.tolist()}


def _energy(part: np.ndarray, whole: np.ndarray) -> float:
    return float(np.square(part).sum() / np.square(whole).sum())


@torch.no_grad()
def cifa_spectra(model: GradeModel, patches: np.ndarray, slices_2d: str = "all",
                 batch_size: int = 256) -> dict[str, np.ndarray | float]:
    """Spectra of the common and individual components of a trained CIFA-family model on `patches`.

    With Y_i the (samples x I_i) standardised features and J_i, A_i their common / individual components,
    returns for i = 1 (local), 2 (non-local): `sv_common_i`, `sv_individual_i`, `sv_feature_i` (singular
    values, descending), `energy_common_i` = ||J_i||^2/||Y_i||^2, `energy_individual_i`, `energy_residual_i`
    = ||Y_i - J_i - A_i||^2/||Y_i||^2, `sv_v_i` (singular values of V_i, 1 when row-orthonormal),
    `orthogonality_i` = max |V_i Q_i^T|, and `common_gap` = ||V1 Y1 - V2 Y2||^2 / (||V1 Y1||^2 + ||V2 Y2||^2).
    """
    if not isinstance(model.head, CIFAHead):
        raise ValueError(f"cifa_spectra needs a cifa/common/individual model, got {model.method!r}")
    patches = np.asarray(patches, dtype=np.float32)
    samples, _ = patch_samples(patches, model.dim, slices_2d)
    device = next(model.parameters()).device
    y1, y2 = _features(model, torch.from_numpy(np.ascontiguousarray(samples)).to(device), batch_size)
    head = model.head
    v1, v2 = head.v1.detach().double(), head.v2.detach().double()
    q1, q2 = head.complement(v1), head.complement(v2)
    result: dict[str, np.ndarray | float] = {}
    for i, (y, v, q) in enumerate(((y1, v1, q1), (y2, v2, q2)), start=1):
        j, a = y @ v.T @ v, y @ q.T @ q
        yn, jn, an = (t.cpu().numpy() for t in (y, j, a))
        result[f"sv_feature_{i}"] = np.linalg.svd(yn, compute_uv=False)
        result[f"sv_common_{i}"] = np.linalg.svd(jn, compute_uv=False)
        result[f"sv_individual_{i}"] = np.linalg.svd(an, compute_uv=False)
        result[f"energy_common_{i}"] = _energy(jn, yn)
        result[f"energy_individual_{i}"] = _energy(an, yn)
        result[f"energy_residual_{i}"] = _energy(yn - jn - an, yn)
        result[f"sv_v_{i}"] = np.linalg.svd(v.cpu().numpy(), compute_uv=False)
        result[f"orthogonality_{i}"] = float((v @ q.T).abs().max())
    c1, c2 = (y1 @ v1.T).cpu().numpy(), (y2 @ v2.T).cpu().numpy()
    result["common_gap"] = float(np.square(c1 - c2).sum() / (np.square(c1).sum() + np.square(c2).sum()))
    return result


# ------------------------------------------------------------------------------------------------ a fold


@dataclass
class FoldResult:
    """predictions: one row per (method, dim, test patient), `PREDICTION_COLUMNS`; a failed model's rows have
    prob_high NaN and its message in `error`. diagnostics[(method, dim)]: seconds, device, and for CIFA-family
    models `spectra` (on the test patches), for DCCA the canonical correlations after pre-training and at the
    end. failures: [{"method", "dim", "error"}]."""

    predictions: pd.DataFrame
    diagnostics: dict[tuple[str, str], dict]
    failures: list[dict]


def fingerprint(*parts) -> str:
    """A short hash of everything a fold's result depends on (a checkpoint of anything else is stale)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


class _Checkpoint:
    """The fold's checkpoint file: finished models' results and the unfinished model's training state."""

    def __init__(self, path: str | Path | None, key: str, progress: Callable[[str], object]):
        self.path, self.key = (Path(path) if path is not None else None), key
        self.finished: dict[str, dict] = {}
        self.current: dict | None = None
        if self.path is not None and self.path.exists():
            saved = torch.load(self.path, map_location="cpu", weights_only=False)
            if saved.get("fingerprint") == key:
                self.finished, self.current = saved["finished"], saved["current"]
                progress(f"checkpoint {self.path}: {len(self.finished)} finished model(s)"
                         + (f", {self.current['name']} at iteration {self.current['state']['step']}"
                            if self.current else ""))
            else:
                progress(f"ignoring checkpoint {self.path} of another configuration, data or split")

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.key, "finished": self.finished, "current": self.current}, tmp)

    def resume_state(self, name: str) -> dict | None:
        return self.current["state"] if self.current and self.current["name"] == name else None

    def save_current(self, name: str, state: TrainingState) -> None:
        self.current = {"name": name, "state": state.state_dict()}
        self.save()

    def finish(self, name: str, result: dict) -> None:
        self.finished[name] = result
        self.current = None
        self.save()


def run_fold(patches: np.ndarray, patch_patient: np.ndarray, labels: dict[str, int], train_ids: list[str],
             test_ids: list[str], methods: list[tuple[str, str]], config: GradeTrainConfig, *,
             progress: Callable[[str], object] = print, device: torch.device | None = None,
             checkpoint_path: str | Path | None = None,
             stop_after: tuple[str, str, int] | None = None) -> FoldResult:
    """Train every (method, dim) in `methods` on the training patients, predict the test patients.

    patches: (N, 16, 16, 16) float32 in (z, y, x) order; patch_patient: (N,) patient id of each patch;
    labels: patient -> 0 (low) / 1 (high). A patient's prob_high is the mean over its samples of P(high).
    `device`: None resolves `config.device` (`training_device`). `checkpoint_path`: resume from / save to this
    file (keyed to the data, split, methods and config).
    `stop_after=(method, dim, step)`: raise InterruptedError right after that model's checkpoint at that
    step, as a kill would (used to test resumption).
    """
    patches = np.asarray(patches, dtype=np.float32)
    patch_patient = np.asarray(patch_patient).astype(str)
    train_ids, test_ids = [str(p) for p in train_ids], [str(p) for p in test_ids]
    _check_inputs(patches, patch_patient, labels, train_ids, test_ids, methods)
    device = training_device(config.device, progress) if device is None else device
    check_precision(config.precision, device)
    numbers = {k: v for k, v in asdict(config).items() if k not in ("checkpoint_every", "log_every")}
    key = fingerprint(patches, patch_patient, sorted(labels.items()), train_ids, test_ids, methods, numbers)
    ckpt = _Checkpoint(checkpoint_path, key, progress)
    is_train, is_test = np.isin(patch_patient, train_ids), np.isin(patch_patient, test_ids)
    results: dict[tuple[str, str], dict] = {}
    for dim in dict.fromkeys(d for _, d in methods):
        train_x, train_src = patch_samples(patches[is_train], dim, config.slices_2d)
        test_x, test_src = patch_samples(patches[is_test], dim, config.slices_2d)
        train_patient = patch_patient[is_train][train_src]
        test_patient = patch_patient[is_test][test_src]
        x_train = torch.from_numpy(np.ascontiguousarray(train_x)).to(device)
        y_train = torch.tensor([labels[p] for p in train_patient], dtype=torch.int64, device=device)
        x_test = torch.from_numpy(np.ascontiguousarray(test_x)).to(device)
        for method in [m for m, d in methods if d == dim]:
            name = f"{method}/{dim}"
            if name in ckpt.finished:
                progress(f"{name}: finished before the restart, taken from the checkpoint")
                results[(method, dim)] = ckpt.finished[name]
                continue
            result = _train_and_predict(method, dim, x_train, y_train, train_patient, x_test, test_patient,
                                        patches[is_test], test_ids, config, device, progress, ckpt, stop_after)
            ckpt.finish(name, result)
            results[(method, dim)] = result
    return _fold_result(results, methods, labels, test_ids)


def _train_and_predict(method, dim, x_train, y_train, train_patient, x_test, test_patient, test_patches, test_ids,
                       config, device, progress, ckpt, stop_after) -> dict:
    """One model: train, predict, diagnose. A non-finite loss or a failed factorisation is caught and
    returned as the model's error (its predictions NaN); anything else is a bug and propagates."""
    name = f"{method}/{dim}"

    def save(state: TrainingState) -> None:
        ckpt.save_current(name, state)
        if stop_after == (method, dim, state.step):
            raise InterruptedError(f"stopped after iteration {state.step} of {name} as asked")

    def after_pretraining(model: GradeModel) -> dict:
        return dcca_correlations(model, x_train, x_test, config.eval_batch_size)

    tic = time.perf_counter()
    info: dict = {"device": str(device), "precision": config.precision}
    try:
        model, extra = train_model(method, dim, x_train, y_train, train_patient, config, progress, device=device,
                                   resume=ckpt.resume_state(name), save=save, after_pretraining=after_pretraining)
        prob = predict_samples(model, x_test, config.eval_batch_size, config.precision)
        if not np.all(np.isfinite(prob)):
            raise FloatingPointError(f"{name}: non-finite predicted probabilities")
        if isinstance(model.head, CIFAHead):
            info["spectra"] = cifa_spectra(model, test_patches, config.slices_2d, config.eval_batch_size)
        if isinstance(model.head, DCCAHead):
            info["dcca"] = {"batch_patients": len(np.unique(train_patient)), "dcca_dim": config.dcca_dim,
                            **({"after_pretraining": extra["after_pretraining"]} if extra else {}),
                            "final": dcca_correlations(model, x_train, x_test, config.eval_batch_size)}
        per_patient = pd.Series(prob).groupby(test_patient).mean().reindex(test_ids).to_numpy()
        error = ""
    except (FloatingPointError, torch.linalg.LinAlgError) as exc:
        message = str(exc).strip().splitlines()[0]
        error = message if message.startswith(name) else f"{name}: {message}"
        progress(f"{name} FAILED, its rows are left empty and the other models go on: {error}")
        per_patient = np.full(len(test_ids), np.nan)
    info["seconds"] = time.perf_counter() - tic
    return {"prob_high": per_patient.tolist(), "error": error, "info": info}


def _fold_result(results: dict, methods: list[tuple[str, str]], labels: dict[str, int],
                 test_ids: list[str]) -> FoldResult:
    rows, diagnostics, failures = [], {}, []
    for method, dim in methods:
        res = results[(method, dim)]
        rows.append(pd.DataFrame({"method": method, "dim": dim, "patient_id": test_ids,
                                  "label": [int(labels[p]) for p in test_ids],
                                  "prob_high": np.asarray(res["prob_high"], dtype=float), "error": res["error"]}))
        diagnostics[(method, dim)] = res["info"]
        if res["error"]:
            failures.append({"method": method, "dim": dim, "error": res["error"]})
    return FoldResult(pd.concat(rows, ignore_index=True)[PREDICTION_COLUMNS], diagnostics, failures)


def train_fold(patches: np.ndarray, patch_patient: np.ndarray, labels: dict[str, int], train_ids: list[str],
               test_ids: list[str], methods: list[tuple[str, str]], config: GradeTrainConfig,
               progress: Callable[[str], object] = print, **kwargs) -> pd.DataFrame:
    """`run_fold(...).predictions`: one row per (method, dim, test patient), in `methods` order."""
    return run_fold(patches, patch_patient, labels, train_ids, test_ids, methods, config, progress=progress,
                    **kwargs).predictions
