"""Metrics, DeLong's test, bootstrap intervals and paired tests used by both papers' tables."""

from .bootstrap import bootstrap_ci, paired_bootstrap_macro_auc
from .delong import DelongResult, delong_ci, delong_from_csv, delong_roc_test
from .metrics import binary_metrics, macro_ovo_auc, mvi_metrics, per_fold_metrics, summarise
from .paired import pairwise_class_delong, paired_t_over_folds

__all__ = [
    "DelongResult", "binary_metrics", "bootstrap_ci", "delong_ci", "delong_from_csv", "delong_roc_test",
    "macro_ovo_auc", "mvi_metrics", "paired_bootstrap_macro_auc", "paired_t_over_folds",
    "pairwise_class_delong", "per_fold_metrics", "summarise",
]
