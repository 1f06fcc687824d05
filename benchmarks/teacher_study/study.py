"""Teacher study: pooled out-of-fold macro AUC of teacher variants, the clinical-only LR, and students.

    PYTHONPATH=$PWD python benchmarks/teacher_study/study.py --workdir DIR --variants baseline,affine_pre \
        [--students ours,s_pre_hbp] [--folds 0,1,2,3,4] --out benchmarks/teacher_study/results/NAME.csv

`DIR` is a workflow directory holding `results/datasets/mvi.npz`, `results/clinical/clinical_clean.parquet`,
`results/folds/mvi.parquet`, `results/cohort/labels.parquet` and the synthetic cohort's clinical dictionary
(`resources/synthetic_cohort/clinical_dictionary.csv`), i.e. what
`snakemake [-d DIR] results/datasets/mvi.npz results/clinical/clinical_clean.parquet results/folds/mvi.parquet
results/cohort/labels.parquet` writes. Model and training settings are the workflow's `config.yaml` (`mvi.model`,
`mvi.training`, `mvi.distillation`, `seed`, `folds.inner_validation_fraction`) with each variant's changes.

Every teacher variant is trained by the library's own `train_teacher_fold` and scored by `predict_fold`, except
the diagnostic variants (`DIAGNOSTICS`), which change the data or the network outside the Teacher's options
and are trained by the same `fit` loop here. Per variant the CSV gets: the pooled out-of-fold macro one-vs-one
AUC (Hand & Till), the mean per-fold test AUC, the mean inner-validation AUC of the selected epochs (what design
choices are made on), the selected epochs and the mean training seconds per fold.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cmdnet.clinical import ClinicalPreprocessor  # noqa: E402
from cmdnet.stats.metrics import macro_ovo_auc  # noqa: E402
from cmdnet.training.clinical_lr import predict_clinical_lr_fold, train_clinical_lr_fold  # noqa: E402
from cmdnet.training.loop import TrainConfig, fit, predict_probs  # noqa: E402
from cmdnet.training.mvi import (  # noqa: E402
    MviData, _focal, _split, load_mvi_data, model_kwargs, predict_fold, train_method_fold, train_teacher_fold,
)
from cmdnet.training.tasks import SupervisedTask  # noqa: E402
from cmdnet.models import build_model  # noqa: E402

PHASES = ["PRE", "HBP"]

# Teacher variants: `teacher` = keyword arguments of cmdnet.models.Teacher (mvi.model.teacher), `training` =
# changes to mvi.training for the teacher only.
# "baseline" is the teacher before this study (chained clinical layers, PyTorch's random init, val_auc selection);
# variants not naming clinical_path / clinical_init inherit the baseline's (they were run before the defaults moved).
BASELINE = {"clinical_path": "chain", "clinical_init": "random"}
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "epochs16": {"training": {"epochs": 16}},
    "epochs24": {"training": {"epochs": 24}},
    "raw": {"teacher": {"clinical_scale": "raw"}},
    "pre": {"teacher": {"fusion_point": "pre_activation"}},
    "affine": {"teacher": {"fusion": "affine"}},
    "affine_pre": {"teacher": {"fusion": "affine", "fusion_point": "pre_activation"}},
    "recon": {"teacher": {"clinical_weight": 1.0}},
    "affine_pre_recon": {"teacher": {"fusion": "affine", "fusion_point": "pre_activation", "clinical_weight": 1.0}},
    "parallel": {"teacher": {"clinical_path": "parallel"}},
    "parallel_affine_pre": {"teacher": {"clinical_path": "parallel", "fusion": "affine",
                                        "fusion_point": "pre_activation"}},
    "parallel_cdrop": {"teacher": {"clinical_path": "parallel", "clinical_dropout": 0.5}},
    "parallel_cdrop_hdrop": {"teacher": {"clinical_path": "parallel", "clinical_dropout": 0.5, "dropout": 0.5}},
    "parallel_affine_pre_cdrop": {"teacher": {"clinical_path": "parallel", "fusion": "affine",
                                              "fusion_point": "pre_activation", "clinical_dropout": 0.5}},
    "parallel_head": {"teacher": {"clinical_path": "parallel", "clinical_to_head": True}},
    "parallel_valloss": {"teacher": {"clinical_path": "parallel"}, "training": {"selection_metric": "val_loss"}},
    "parallel_zero": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero"}},
    "parallel_affine_pre_zero": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero", "fusion": "affine",
                                             "fusion_point": "pre_activation"}},
    "parallel_label": {"teacher": {"clinical_path": "parallel", "clinical_weight": 1.0, "clinical_target": "label"}},
    "parallel_zero_label": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero", "clinical_weight": 1.0,
                                        "clinical_target": "label"}},
    "parallel_recon01": {"teacher": {"clinical_path": "parallel", "clinical_weight": 0.1}},
    "parallel_zero_valloss": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero"},
                              "training": {"selection_metric": "val_loss"}},
    "parallel_zero_e16": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero"}, "training": {"epochs": 16}},
    "baseline_valloss": {"training": {"selection_metric": "val_loss"}},
    "parallel_affine_pre_zero_valloss": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero",
                                                     "fusion": "affine", "fusion_point": "pre_activation"},
                                         "training": {"selection_metric": "val_loss"}},
    "parallel_zero_valloss_recon01": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero",
                                                  "clinical_weight": 0.1},
                                      "training": {"selection_metric": "val_loss"}},
    "parallel_zero_valloss_recon1": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero",
                                                 "clinical_weight": 1.0},
                                     "training": {"selection_metric": "val_loss"}},
    "parallel_zero_valloss_gain10": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero",
                                                 "clinical_gain": 10.0},
                                     "training": {"selection_metric": "val_loss"}},
    "parallel_zero_gain10": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero", "clinical_gain": 10.0}},
    "parallel_zero_valloss_head": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero",
                                               "clinical_to_head": True},
                                   "training": {"selection_metric": "val_loss"}},
    "parallel_zero_valloss_e16": {"teacher": {"clinical_path": "parallel", "clinical_init": "zero"},
                                  "training": {"selection_metric": "val_loss", "epochs": 16}},
    "parallel_affine_pre_recon": {"teacher": {"clinical_path": "parallel", "fusion": "affine",
                                              "fusion_point": "pre_activation", "clinical_weight": 1.0}},
}

# Diagnostics: what limits today's teacher. `images` / `clinical` replace that input by zeros (the teacher then
# sees one modality through the same network); `he_init` re-initialises the clinical FC chain with He init.
DIAGNOSTICS: dict[str, dict] = {
    "zero_images": {"zero": "images"},
    "shuffled_images": {"shuffle": "images"},
    "zero_clinical": {"zero": "clinical"},
    "he_init": {"he_init": True},
}


def read_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def load(workdir: Path) -> tuple[MviData, pd.DataFrame]:
    r = workdir / "results"
    data = load_mvi_data(r / "datasets/mvi.npz", r / "cohort/labels.parquet", PHASES,
                         clinical_path=r / "clinical/clinical_clean.parquet",
                         dictionary_path=workdir / "resources/synthetic_cohort/clinical_dictionary.csv")
    return data, pd.read_parquet(r / "folds/mvi.parquet")


def merged(base: dict, change: dict) -> dict:
    out = dict(base)
    for k, v in change.items():
        out[k] = merged(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def pooled_auc(pred: pd.DataFrame) -> float:
    return macro_ovo_auc(pred["label"].to_numpy(), pred[["prob_0", "prob_1", "prob_2"]].to_numpy())


def fold_auc(pred: pd.DataFrame) -> float:
    return float(np.mean([pooled_auc(g) for _, g in pred.groupby("fold")]))


def _selected(history: pd.DataFrame, best_epoch: int) -> float:
    return float(history.loc[history["epoch"] == best_epoch, "val_auc"].iloc[0])


def run_diagnostic(data: MviData, folds: pd.DataFrame, fold: int, spec: dict, model_cfg: dict, train_cfg: dict,
                   seed: int, inner: float) -> tuple[pd.DataFrame, float, int]:
    """train_teacher_fold's steps with the data or the network changed as `spec` says."""
    cfg = TrainConfig.from_dict(train_cfg)
    train_ids, test_ids, fit_ids, val_ids = _split(folds, fold, data.labels, inner, seed)
    pre = ClinicalPreprocessor(data.dictionary).fit(data.clinical.loc[train_ids])

    def arrays(ids):
        a = data.arrays(ids, tuple(PHASES), pre.transform(data.clinical.loc[ids]))
        if spec.get("zero") == "images":
            a.images = np.zeros_like(a.images)
        if spec.get("zero") == "clinical":
            a.clinical = np.zeros_like(a.clinical)
        if spec.get("shuffle") == "images":  # images of other patients of the same split: no image signal left
            a.images = a.images[np.random.default_rng(seed + fold).permutation(len(a.images))]
        return a

    train, val, test = arrays(fit_ids), arrays(val_ids), arrays(test_ids)
    kwargs = model_kwargs(model_cfg, tuple(PHASES), data.images.shape[2:], use_ca=True, cmdnet_module=True,
                          n_clinical=len(pre.feature_names))
    torch.manual_seed(seed + fold)
    model = build_model("teacher", **kwargs)
    if spec.get("he_init"):
        for enc in model.encoders.values():
            for fc in enc.clinical.fcs:
                torch.nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
                torch.nn.init.zeros_(fc.bias)
    task = SupervisedTask(model, _focal(cfg, train.labels), uses_clinical=True)
    result = fit(task, train, val, cfg, seed=seed + fold, progress=lambda _: None)
    probs = predict_probs(task, test.tensors(torch.device("cpu")))
    out = pd.DataFrame({"patient_id": test_ids, "fold": fold, "label": test.labels})
    for c in range(probs.shape[1]):
        out[f"prob_{c}"] = probs[:, c]
    return out, _selected(result.history, result.best_epoch), result.best_epoch


def permuted(data: MviData, test_ids: list[str], what: str, seed: int) -> MviData:
    """A copy of `data` in which the test patients' clinical rows or images are permuted among themselves."""
    order = np.random.default_rng(seed).permutation(len(test_ids))
    clinical, images = data.clinical.copy(), data.images.copy()
    if what == "clinical":
        clinical.loc[test_ids] = data.clinical.loc[[test_ids[i] for i in order]].to_numpy()
    else:
        rows = np.array([data.patient_ids.index(p) for p in test_ids])
        images[rows] = data.images[rows[order]]
    return MviData(images, data.phases, data.patient_ids, data.labels, clinical, data.dictionary)


def run_variant(name: str, data: MviData, folds: pd.DataFrame, fold_list: list[int], cfg: dict, tmp: Path,
                students: list[str]) -> list[dict]:
    spec = {**VARIANTS, **DIAGNOSTICS}[name]
    model_cfg = merged(cfg["mvi"]["model"], {"teacher": {**BASELINE, **spec.get("teacher", {})}})
    train_cfg = merged(cfg["mvi"]["training"], spec.get("training", {}))
    seed, inner = cfg["seed"], cfg["folds"]["inner_validation_fraction"]
    oof, vals, epochs, secs = [], [], [], []
    perm: dict[str, list[pd.DataFrame]] = {"clinical": [], "images": []}
    student_oof: dict[str, list[pd.DataFrame]] = {s: [] for s in students}
    for fold in fold_list:
        tic = time.perf_counter()
        if name in DIAGNOSTICS:
            pred, val_auc, best = run_diagnostic(data, folds, fold, spec, model_cfg, train_cfg, seed, inner)
        else:
            model, hist = tmp / f"{name}_t{fold}.pt", tmp / f"{name}_t{fold}.csv"
            info = train_teacher_fold(data, folds, fold, "teacher", model_cfg, train_cfg, seed=seed,
                                      inner_fraction=inner, out_model=model, out_history=hist,
                                      progress=lambda _: None)
            best = info["best_epoch"]
            val_auc = _selected(pd.read_csv(hist), best)
            pred = predict_fold(model, data, folds, fold)
            test_ids = pred["patient_id"].tolist()
            for what in perm:  # how much the teacher relies on each input: AUC with it permuted among test patients
                perm[what].append(predict_fold(model, permuted(data, test_ids, what, seed + fold), folds, fold))
        secs.append(time.perf_counter() - tic)
        oof.append(pred)
        vals.append(val_auc)
        epochs.append(best)
        for s in students:
            out = tmp / f"{name}_{s}{fold}.pt"
            train_method_fold(data, folds, fold, s, cfg["mvi"]["model"], cfg["mvi"]["training"],
                              cfg["mvi"]["distillation"], seed=seed, inner_fraction=inner, out_model=out,
                              out_history=tmp / f"{name}_{s}{fold}.csv", teacher_path=tmp / f"{name}_t{fold}.pt",
                              progress=lambda _: None)
            student_oof[s].append(predict_fold(out, data, folds, fold))
    pred = pd.concat(oof, ignore_index=True)
    rows = [{"variant": name, "model": "teacher", "pooled_auc": pooled_auc(pred), "fold_auc": fold_auc(pred),
             "val_auc": float(np.mean(vals)), "best_epochs": " ".join(map(str, epochs)),
             "seconds_per_fold": float(np.mean(secs)), "spec": json.dumps(spec, sort_keys=True)}]
    for what, frames in perm.items():
        if frames:
            rows[0][f"auc_{what}_permuted"] = pooled_auc(pd.concat(frames, ignore_index=True))
    for s, frames in student_oof.items():
        p = pd.concat(frames, ignore_index=True)
        rows.append({"variant": name, "model": s, "pooled_auc": pooled_auc(p), "fold_auc": fold_auc(p),
                     "spec": json.dumps(spec, sort_keys=True)})
    return rows


def run_clinical_lr(data: MviData, folds: pd.DataFrame, fold_list: list[int], seed: int, tmp: Path,
                    c: float | str) -> dict:
    frames, chosen = [], []
    for fold in fold_list:
        path = tmp / f"clinical_lr_{c}_{fold}.json"
        chosen.append(train_clinical_lr_fold(data, folds, fold, c=c, seed=seed, out_model=path)["C"])
        frames.append(predict_clinical_lr_fold(path, data, folds, fold))
    pred = pd.concat(frames, ignore_index=True)
    return {"variant": f"clinical_lr(c={c})", "model": "clinical_lr", "pooled_auc": pooled_auc(pred),
            "fold_auc": fold_auc(pred), "best_epochs": " ".join(f"{x:g}" for x in chosen)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--variants", default="", help="comma-separated names of VARIANTS / DIAGNOSTICS")
    ap.add_argument("--students", default="", help="methods trained from each variant's teacher, e.g. ours,kd_ours")
    ap.add_argument("--baseline-students", default="", help="undistilled methods, trained once, e.g. s_pre_hbp")
    ap.add_argument("--lr", action="store_true", help="also the clinical-only LR (C by inner CV and C = 1)")
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None, help="training seed instead of config.yaml's (folds stay)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = read_config()
    if args.seed is not None:
        cfg["seed"] = args.seed
    data, folds = load(args.workdir)
    fold_list = [int(f) for f in args.folds.split(",")]
    students = [s for s in args.students.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.lr:
            for c in ("cv", 1.0):
                rows.append(run_clinical_lr(data, folds, fold_list, cfg["seed"], tmp, c))
                print(rows[-1], flush=True)
        for s in [s for s in args.baseline_students.split(",") if s]:
            frames, secs = [], []
            for fold in fold_list:
                tic = time.perf_counter()
                train_method_fold(data, folds, fold, s, cfg["mvi"]["model"], cfg["mvi"]["training"], {},
                                  seed=cfg["seed"], inner_fraction=cfg["folds"]["inner_validation_fraction"],
                                  out_model=tmp / f"{s}{fold}.pt", out_history=tmp / f"{s}{fold}.csv",
                                  progress=lambda _: None)
                secs.append(time.perf_counter() - tic)
                frames.append(predict_fold(tmp / f"{s}{fold}.pt", data, folds, fold))
            p = pd.concat(frames, ignore_index=True)
            rows.append({"variant": "-", "model": s, "pooled_auc": pooled_auc(p), "fold_auc": fold_auc(p),
                         "seconds_per_fold": float(np.mean(secs))})
            print(rows[-1], flush=True)
        for name in [v for v in args.variants.split(",") if v]:
            for row in run_variant(name, data, folds, fold_list, cfg, tmp, students):
                rows.append(row)
                print({k: v for k, v in row.items() if k != "spec"}, flush=True)
    out = pd.DataFrame(rows)
    out.insert(0, "workdir", args.workdir.resolve().name)
    out.insert(1, "folds", args.folds)
    out.insert(2, "seed", cfg["seed"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():  # append, keeping the columns of earlier runs aligned
        out = pd.concat([pd.read_csv(args.out), out], ignore_index=True)
    out.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
