"""Grading paper (local and non-local deep feature fusion, binary HCC grade on 16^3 patches).

`build_grade_model(method, dim)` assembles one of the paper's models; `train_fold` trains every configured
(method, dim) on one cross-validation fold and returns patient-level predictions.
"""

from cmdnet.grade.dcca import dcca_loss
from cmdnet.grade.fusion import CIFAHead, ConcatHead, DCCAHead, SingleHead
from cmdnet.grade.networks import GRADE_METHODS, GradeModel, GradeOutput, build_grade_model
from cmdnet.grade.nonlocal_block import NonLocalBlock
from cmdnet.grade.train import GradeTrainConfig, cifa_spectra, train_fold

__all__ = [
    "CIFAHead", "ConcatHead", "DCCAHead", "GRADE_METHODS", "GradeModel", "GradeOutput", "GradeTrainConfig",
    "NonLocalBlock", "SingleHead", "build_grade_model", "cifa_spectra", "dcca_loss", "train_fold",
]
