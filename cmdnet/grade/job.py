"""The workflow's grading job: every configured patch model of one (repeat, fold), with its diagnostics.

`grade_fold_job` resolves the training device first (a `cuda` request on a machine without a GPU stops here,
before any data is read), draws the patch subset of the repeat, trains and predicts through
`cmdnet.grade.train.run_fold` (checkpointed, resumable), and writes the patient-level predictions
(parquet) and a JSON of diagnostics: device, per-model seconds and failures, the fold's patch counts, the
CIFA spectra and the DCCA canonical correlations, and the training configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from cmdnet.atomic import write_json
from cmdnet.grade.methods import grade_method
from cmdnet.seeds import derive_seed
from cmdnet.grade.train import (
    GradeTrainConfig,
    check_precision,
    run_fold,
    subsample_patches,
    training_device,
)


def fold_patch_counts(patch_patient: np.ndarray, train_ids: list[str], test_ids: list[str]) -> dict:
    """Patients and patches of the fold's training and test sides (patches per patient: mean, min, max)."""
    out = {}
    for side, ids in (("train", train_ids), ("test", test_ids)):
        counts = pd.Series(patch_patient).value_counts().reindex(ids, fill_value=0)
        out[side] = {"patients": len(ids), "patches": int(counts.sum()), "per_patient_mean": float(counts.mean()),
                     "per_patient_min": int(counts.min()), "per_patient_max": int(counts.max())}
    return out


def grade_fold_job(dataset: str | Path, labels: str | Path, folds: str | Path, grade_cfg: dict, seed: int,
                   repeat: int, fold: int, out_predictions: str | Path, out_diagnostics: str | Path, *,
                   checkpoint_path: str | Path | None = None,
                   progress: Callable[[str], object] | None = None) -> pd.DataFrame:
    """Train every (method, dim) of `grade_cfg` on one repeat and fold; write predictions and diagnostics.

    grade_cfg: the `grade` config section (`methods`, `dims`, `training`). Seeds: the fold's models derive theirs
    from `derive_seed(seed, "grade", repeat, fold)`; the patch subset (`training.patches_per_patient`) is drawn
    with `derive_seed(seed, "grade-patches", repeat)`, so it is redrawn per repeat and shared by the folds of a
    repeat. The checkpoint is deleted once the outputs are written.
    """
    from cmdnet.data.datasets import load_dataset
    from cmdnet.data.folds import fold_split
    from cmdnet.data.sheets import write_parquet
    from cmdnet.labels import outcome

    if progress is None:
        def progress(line: str) -> None:
            print(f"[grade repeat {repeat} fold {fold}] {line}", flush=True)
    config = GradeTrainConfig.from_dict(grade_cfg.get("training") or {}, seed=derive_seed(seed, "grade", repeat, fold))
    device = training_device(config.device, progress)
    check_precision(config.precision, device)
    methods = [(grade_method(m).name, d) for d in grade_cfg["dims"] for m in grade_cfg["methods"]]

    data = load_dataset(dataset)
    grade = outcome(labels, "grade").to_dict()
    train_ids, test_ids = fold_split(pd.read_parquet(folds), fold, repeat=repeat)
    owner = np.asarray(data["patch_patient"]).astype(str)
    keep = subsample_patches(owner, config.patches_per_patient, seed=derive_seed(seed, "grade-patches", repeat))
    patches, owner = data["patches"][keep], owner[keep]

    result = run_fold(patches, owner, grade, train_ids, test_ids, methods, config, progress=progress,
                      device=device, checkpoint_path=checkpoint_path)
    predictions = result.predictions
    predictions.insert(0, "repeat", repeat)
    predictions.insert(1, "fold", fold)
    diagnostics = {
        "repeat": repeat, "fold": fold, "device": str(device), "precision": config.precision,
        "config": asdict(config), "patches": {**fold_patch_counts(owner, train_ids, test_ids),
                                              "patches_per_patient": config.patches_per_patient},
        "failures": result.failures,
        "models": {f"{m}/{d}": info for (m, d), info in result.diagnostics.items()},
    }
    write_parquet(predictions, out_predictions)
    write_json(diagnostics, out_diagnostics, indent=1)
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)   # done: a later run must start afresh
    seconds = sum(info["seconds"] for info in result.diagnostics.values())
    progress(f"{len(methods)} models on {device} in {seconds:.1f} s, {len(result.failures)} failed")
    return predictions
