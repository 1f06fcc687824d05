"""Training of the grading models on one (repeat, fold) and patient-level prediction.

As in the paper (Sect. 2.5): end to end, Adam, learning rate 1e-4 decayed by 0.99 (staircase: every
`decay_every` iterations, lr = lr0 * 0.99 ** (iteration // decay_every)), a fixed number of iterations
(paper: 15000). No early stopping and no model selection: the test patients are only predicted at the end.

Samples: 3D models see the 16^3 patches; 2D models see 16x16 axial slices (the (y, x) planes of the
(z, y, x) patches), by default all 16 slices of every patch (`slices_2d="all"`), or only the central one
(`"central"`, z = 8). Batches are drawn patient-balanced: each element picks a training patient uniformly,
then one of that patient's samples uniformly, so that patients with large tumours (many patches) do not
dominate. A patient's prediction is the mean over all its samples (patches, or slices) of the softmax
probability of high grade.

Each (method, dim) model is trained separately, with its own seed derived from (seed, method, dim), so a
model's numbers do not depend on which other methods are configured; all of them run in one call (one
process) because these small models are overhead-bound.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from cmdnet.errors import CohortError, InputError
from cmdnet.grade.fusion import CIFAHead
from cmdnet.grade.networks import DIMS, GRADE_METHODS, GradeModel, build_grade_model

PATCH = 16
PREDICTION_COLUMNS = ["method", "dim", "patient_id", "label", "prob_high"]


@dataclass(frozen=True)
class GradeTrainConfig:
    """Training and architecture settings shared by all methods of one fold."""

    iterations: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    lr_decay: float = 0.99
    decay_every: int = 100
    local_channels: tuple[int, ...] = (32, 64)
    nonlocal_channels: int = 64
    nonlocal_inter_channels: int = 64
    nonlocal_subsample: bool = False
    common_dim: int = 16
    cifa_phi: tuple[float, float] = (1.0, 1.0)
    cifa_theta: tuple[float, float] = (1.0, 1.0)
    ortho_weight: float = 1.0
    dcca_dim: int = 16
    dcca_r1: float = 1e-3
    dcca_r2: float = 1e-3
    aux_weight: float = 0.1
    slices_2d: str = "all"
    eval_batch_size: int = 256
    seed: int = 0
    device: str = "cpu"
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

    def model_kwargs(self) -> dict:
        keys = ("local_channels", "nonlocal_channels", "nonlocal_inter_channels", "nonlocal_subsample",
                "common_dim", "cifa_phi", "cifa_theta", "ortho_weight", "dcca_dim", "dcca_r1", "dcca_r2")
        d = asdict(self)
        return {k: d[k] for k in keys}


def model_seed(seed: int, method: str, dim: str) -> int:
    """A stable per-model seed (independent of Python's hash randomisation and of the method list)."""
    return (seed * 1_000_003 + zlib.crc32(f"{method}/{dim}".encode())) % (2**31 - 1)


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
        if method not in GRADE_METHODS or dim not in DIMS:
            raise ValueError(f"unknown (method, dim) {(method, dim)!r}; methods {sorted(GRADE_METHODS)}, "
                             f"dims {sorted(DIMS)}")


class _PatientBalancedSampler:
    """Draws batches of sample indices: a training patient uniformly, then one of its samples uniformly."""

    def __init__(self, sample_patient: np.ndarray, rng: np.random.Generator):
        order = np.argsort(sample_patient, kind="stable")
        _, self.starts, self.counts = np.unique(sample_patient[order], return_index=True, return_counts=True)
        self.order, self.rng = order, rng

    def __call__(self, batch_size: int) -> np.ndarray:
        p = self.rng.integers(len(self.starts), size=batch_size)
        within = np.floor(self.rng.random(batch_size) * self.counts[p]).astype(np.int64)
        return self.order[self.starts[p] + within]


def train_model(method: str, dim: str, samples: torch.Tensor, targets: torch.Tensor, sample_patient: np.ndarray,
                config: GradeTrainConfig, progress: Callable[[str], object] = print) -> GradeModel:
    """Train one (method, dim) model on float samples (M, 16, 16[, 16]) with int64 targets (M,)."""
    seed = model_seed(config.seed, method, dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_grade_model(method, dim, **config.model_kwargs())
    model.to(config.device).train()
    sampler = _PatientBalancedSampler(sample_patient, np.random.default_rng(seed))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=config.decay_every, gamma=config.lr_decay)
    cross_entropy = nn.CrossEntropyLoss()
    log_every = config.log_every or max(1, config.iterations // 5)
    for it in range(1, config.iterations + 1):
        idx = torch.from_numpy(sampler(config.batch_size)).to(samples.device)
        out = model(samples[idx])
        ce = cross_entropy(out.logits, targets[idx])
        loss = ce + config.aux_weight * out.aux_loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{method}/{dim}: non-finite loss at iteration {it} "
                                     f"(cross-entropy {float(ce)}, aux {float(out.aux_loss)})")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if it % log_every == 0 or it == config.iterations:
            progress(f"{method}/{dim}: iteration {it}/{config.iterations}, cross-entropy {ce.item():.4f}, "
                     f"aux {out.aux_loss.item():.4f}, lr {schedule.get_last_lr()[0]:.3g}")
    return model.eval()


@torch.no_grad()
def predict_samples(model: GradeModel, samples: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Softmax probability of high grade (class 1) for every sample, in eval mode."""
    model.eval()
    probs = [torch.softmax(model(samples[i:i + batch_size]).logits, dim=1)[:, 1]
             for i in range(0, samples.shape[0], batch_size)]
    return torch.cat(probs).double().cpu().numpy()


def train_fold(patches: np.ndarray, patch_patient: np.ndarray, labels: dict[str, int], train_ids: list[str],
               test_ids: list[str], methods: list[tuple[str, str]], config: GradeTrainConfig,
               progress: Callable[[str], object] = print,
               keep_models: dict[tuple[str, str], GradeModel] | None = None) -> pd.DataFrame:
    """Train every (method, dim) in `methods` on the training patients, predict the test patients.

    patches: (N, 16, 16, 16) float32 in (z, y, x) order; patch_patient: (N,) patient id of each patch;
    labels: patient -> 0 (low) / 1 (high). Returns one row per (method, dim, test patient) with columns
    method, dim, patient_id, label, prob_high (mean over the patient's samples of P(high)).
    If `keep_models` is a dict, the trained models are stored in it under (method, dim) (e.g. for
    `cifa_spectra`).
    """
    patches = np.asarray(patches, dtype=np.float32)
    patch_patient = np.asarray(patch_patient).astype(str)
    train_ids, test_ids = [str(p) for p in train_ids], [str(p) for p in test_ids]
    _check_inputs(patches, patch_patient, labels, train_ids, test_ids, methods)
    is_train = np.isin(patch_patient, train_ids)
    is_test = np.isin(patch_patient, test_ids)
    rows: list[pd.DataFrame] = []
    for dim in dict.fromkeys(d for _, d in methods):
        train_x, train_src = patch_samples(patches[is_train], dim, config.slices_2d)
        test_x, test_src = patch_samples(patches[is_test], dim, config.slices_2d)
        train_patient = patch_patient[is_train][train_src]
        test_patient = patch_patient[is_test][test_src]
        x_train = torch.from_numpy(np.ascontiguousarray(train_x)).to(config.device)
        y_train = torch.tensor([labels[p] for p in train_patient], dtype=torch.int64, device=config.device)
        x_test = torch.from_numpy(np.ascontiguousarray(test_x)).to(config.device)
        for method in [m for m, d in methods if d == dim]:
            model = train_model(method, dim, x_train, y_train, train_patient, config, progress)
            prob = predict_samples(model, x_test, config.eval_batch_size)
            per_patient = pd.Series(prob).groupby(test_patient).mean()
            rows.append(pd.DataFrame({
                "method": method, "dim": dim, "patient_id": test_ids,
                "label": [int(labels[p]) for p in test_ids],
                "prob_high": per_patient.reindex(test_ids).to_numpy(),
            }))
            if keep_models is not None:
                keep_models[(method, dim)] = model
    order = {md: i for i, md in enumerate(methods)}
    out = pd.concat(rows, ignore_index=True)
    out["_order"] = [order[(m, d)] for m, d in zip(out["method"], out["dim"])]
    return out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)[PREDICTION_COLUMNS]


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
    model.eval()
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(samples)).to(device)
    feats = [model.features(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    y1 = torch.cat([f[0] for f in feats]).double()
    y2 = torch.cat([f[1] for f in feats]).double()
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
