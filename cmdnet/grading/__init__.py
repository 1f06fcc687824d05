"""Grading paper (local and non-local deep feature fusion, binary HCC grade on 16^3 patches).

`methods.GRADE_METHODS` is the registry of models and the table rows they give; `build_grade_model(method,
dim)` assembles one; `run_fold` trains every configured (method, dim) on one cross-validation fold and returns
patient-level predictions and diagnostics; `job.grade_fold_job` is the workflow's (repeat, fold) job and
`evaluate.grade_evaluation` its tables, statistics and figures.
"""

from cmdnet.grading.dcca import dcca_loss
from cmdnet.grading.fusion import CIFAAnalysis, CIFAHead, ConcatHead, DCCAHead, SingleHead
from cmdnet.grading.methods import GRADE_METHODS, GRADE_TABLES, REFERENCE, GradeMethod, grade_method
from cmdnet.grading.networks import GradeModel, GradeOutput, build_grade_model
from cmdnet.grading.nonlocal_block import NonLocalBlock
from cmdnet.grading.train import FoldResult, GradeTrainConfig, cifa_spectra, run_fold, train_fold

__all__ = [
    "CIFAAnalysis", "CIFAHead", "ConcatHead", "DCCAHead", "FoldResult", "GRADE_METHODS", "GRADE_TABLES",
    "GradeMethod", "GradeModel", "GradeOutput", "GradeTrainConfig", "NonLocalBlock", "REFERENCE", "SingleHead",
    "build_grade_model", "cifa_spectra", "dcca_loss", "grade_method", "run_fold", "train_fold",
]
