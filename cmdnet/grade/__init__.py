"""Grading paper (local and non-local deep feature fusion, binary HCC grade on 16^3 patches).

`methods.GRADE_METHODS` is the registry of models and the table rows they give; `build_grade_model(method,
dim)` assembles one; `run_fold` trains every configured (method, dim) on one cross-validation fold and returns
patient-level predictions and diagnostics; `job.grade_fold_job` is the workflow's (repeat, fold) job and
`evaluate.grade_evaluation` its tables, statistics and figures.

Names are imported lazily, so that reading the registry (the workflow does, at parse time) imports no torch.
"""

from importlib import import_module

_WHERE = {
    "dcca_loss": "dcca",
    "CIFAAnalysis": "fusion", "CIFAHead": "fusion", "ConcatHead": "fusion", "DCCAHead": "fusion",
    "SingleHead": "fusion",
    "GRADE_METHODS": "methods", "GRADE_TABLES": "methods", "REFERENCE": "methods", "GradeMethod": "methods",
    "grade_method": "methods",
    "GradeModel": "networks", "GradeOutput": "networks", "build_grade_model": "networks",
    "NonLocalBlock": "nonlocal_block",
    "FoldResult": "train", "GradeTrainConfig": "train", "cifa_spectra": "train", "run_fold": "train",
    "train_fold": "train",
}
__all__ = [
    "GRADE_METHODS",
    "GRADE_TABLES",
    "REFERENCE",
    "CIFAAnalysis",
    "CIFAHead",
    "ConcatHead",
    "DCCAHead",
    "FoldResult",
    "GradeMethod",
    "GradeModel",
    "GradeOutput",
    "GradeTrainConfig",
    "NonLocalBlock",
    "SingleHead",
    "build_grade_model",
    "cifa_spectra",
    "dcca_loss",
    "grade_method",
    "run_fold",
    "train_fold",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'cmdnet.grade' has no attribute {name!r}")
    return getattr(import_module(f"cmdnet.grade.{_WHERE[name]}"), name)
