"""The student learns: synthetic DICOM -> conversion -> ROI crops -> teacher -> distilled student -> out-of-fold
predictions, all through the library's real stages, and the student's pooled macro AUC is well above chance.

The cohort's image signal is turned up (`image_signal`) so that a 2-minute CPU run can show learning with a
small cohort; everything else is the default generative model. A negative control (the same images with the
labels shuffled) must stay near chance, so the check cannot pass on a leak. Same seed, same numbers: the
thresholds are not tuned against run-to-run noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmdnet.folds import make_folds
from cmdnet.pipeline import (assemble, clean_clinical_stage, convert_patient, extract_patient_roi,
                             write_labels)
from cmdnet.stats.metrics import macro_ovo_auc
from cmdnet.synth import SynthParams, write_cohort
from cmdnet.synth.params import patient_ids
from cmdnet.training.mvi import load_mvi_data, predict_fold, train_method_fold, train_teacher_fold

pytestmark = pytest.mark.slow

PHASES = ["PRE", "HBP"]
N_PATIENTS = 60
K = 3
IMAGE_SIGNAL = 3.0   # the default is 0.6: stronger, so that a short CPU run on 60 patients shows learning
COHORT_CFG = {"columns": {"patient_id": "patient_id", "mvi": "mvi", "grade": "grade", "dicom": "{phase}_dicom",
                          "series_uid": "{phase}_series_uid", "mask": "{phase}_mask"},
              "identifier_columns": ["name"], "out_of_range": "error",
              "mvi_labels": {"M0": 0, "M1": 1, "M2": 2},
              "grade_labels": {"low": 0, "high": 1, "I": 0, "II": 0, "III": 1, "IV": 1}}
ROI_CFG = {"crop_shape_xyz": [16, 16, 8], "margin_mm": 10.0, "normalisation": "zscore"}
MODEL_CFG = {"width": 0.125, "feature_dim": 16, "norm": "batch", "cross_attention": {"n_tokens": 4}}
TRAIN_CFG = {"epochs": 15, "batch_size": 8, "lr": 3e-3, "warmup_epochs": 1,
             "augmentation": {"flip": True, "rotate_deg": 5.0, "intensity_jitter": 0.05}}
# Teachers are selected by the inner-validation log loss, as the workflow's teachers are (docs/teacher.md).
TEACHER_TRAIN_CFG = {**TRAIN_CFG, "selection_metric": "val_loss"}
DISTILL_CFG = {"temperature": 4.0}


def prepare_cohort(root: Path) -> tuple[Path, Path, Path]:
    """Synthetic cohort -> the workflow's stages -> (dataset, labels, cleaned clinical table)."""
    cohort = root / "cohort"
    write_cohort(cohort, SynthParams(n_patients=N_PATIENTS, seed=11, image_signal=IMAGE_SIGNAL,
                                     mvi_prevalence=(1, 1, 1)))
    sheet = cohort / "cohort.csv"
    ids = patient_ids(N_PATIENTS)
    roi_files = []
    for pid in ids:
        images = [root / "nifti" / pid / f"{p}.nii.gz" for p in PHASES]
        outs = [root / "roi" / pid / f"{p}.npz" for p in PHASES]
        convert_patient(sheet, COHORT_CFG, pid, PHASES, images)
        extract_patient_roi(sheet, COHORT_CFG, ROI_CFG, pid, PHASES, images, outs, patch_phase=None, seed=0)
        roi_files += [str(o) for o in outs]
    assemble(roi_files, ids, PHASES, root / "mvi.npz", patches_of=None)
    write_labels(sheet, COHORT_CFG, PHASES, root / "labels.parquet")
    clean_clinical_stage(cohort / "clinical.csv", cohort / "clinical_dictionary.csv", root / "labels.parquet",
                         COHORT_CFG, root / "clinical.parquet", root / "missingness.csv")
    return root / "mvi.npz", root / "labels.parquet", root / "clinical.parquet"


def pooled_student_auc(root: Path, dataset: Path, labels_path: Path, clinical: Path) -> float:
    """Teacher + distilled student ("ours") per fold; the pooled out-of-fold macro one-vs-one AUC."""
    data = load_mvi_data(dataset, labels_path, PHASES, clinical_path=clinical,
                         dictionary_path=clinical.parent / "cohort" / "clinical_dictionary.csv")
    folds = make_folds(data.labels.astype(int), K, seed=0)
    oof = []
    for fold in range(K):
        out = root / f"fold{fold}"
        teacher = out / "teacher.pt"
        train_teacher_fold(data, folds, fold, "teacher", MODEL_CFG, TEACHER_TRAIN_CFG, seed=0, inner_fraction=0.25,
                           out_model=teacher, out_history=out / "teacher.csv", progress=lambda _: None)
        train_method_fold(data, folds, fold, "ours", MODEL_CFG, TRAIN_CFG, DISTILL_CFG, seed=0, inner_fraction=0.25,
                          out_model=out / "ours.pt", out_history=out / "ours.csv", teacher_path=teacher,
                          progress=lambda _: None)
        oof.append(predict_fold(out / "ours.pt", data, folds, fold))
    pred = pd.concat(oof, ignore_index=True)
    assert sorted(pred["patient_id"]) == sorted(data.patient_ids), "every patient is predicted exactly once, out of fold"
    return macro_ovo_auc(pred["label"].to_numpy(), pred[["prob_0", "prob_1", "prob_2"]].to_numpy())


def test_student_learns_the_image_signal_and_not_shuffled_labels(tmp_path):
    dataset, labels_path, clinical = prepare_cohort(tmp_path)
    learned = pooled_student_auc(tmp_path / "true_labels", dataset, labels_path, clinical)

    # Negative control: the same images with the labels permuted across patients (the teacher's clinical
    # table follows its patient, so the clinical signal is broken too). Nothing real is left to learn.
    labels = pd.read_parquet(labels_path)
    labels["mvi"] = np.random.default_rng(0).permutation(labels["mvi"].to_numpy())
    shuffled_path = tmp_path / "labels_shuffled.parquet"
    labels.to_parquet(shuffled_path)
    shuffled = pooled_student_auc(tmp_path / "shuffled_labels", dataset, shuffled_path, clinical)

    print(f"student pooled macro AUC: {learned:.3f} (true labels), {shuffled:.3f} (shuffled labels)")
    assert learned >= 0.70, f"the student did not learn the synthetic image signal (AUC {learned:.3f})"
    assert shuffled <= 0.60, f"shuffled labels, yet AUC {shuffled:.3f}: something leaks labels into training"
