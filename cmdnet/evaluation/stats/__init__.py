"""Metrics, DeLong's test, bootstrap intervals and paired tests used by both papers' tables."""

from cmdnet.evaluation.stats.bootstrap import bootstrap_ci, paired_bootstrap_macro_auc
from cmdnet.evaluation.stats.delong import DelongResult, delong_ci, delong_from_csv, delong_roc_test
from cmdnet.evaluation.stats.metrics import binary_metrics, macro_ovo_auc, mvi_metrics, per_fold_metrics, summarise
from cmdnet.evaluation.stats.tests import pairwise_class_delong, paired_t_over_folds

__all__ = [
    "DelongResult", "binary_metrics", "bootstrap_ci", "delong_ci", "delong_from_csv", "delong_roc_test",
    "macro_ovo_auc", "mvi_metrics", "paired_bootstrap_macro_auc", "paired_t_over_folds",
    "pairwise_class_delong", "per_fold_metrics", "summarise",
]
