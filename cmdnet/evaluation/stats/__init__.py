"""Metrics, DeLong's test, bootstrap intervals and paired tests used by both papers' tables."""

from cmdnet.evaluation.stats.bootstrap import bootstrap_ci, paired_bootstrap_macro_auc
from cmdnet.evaluation.stats.delong import DelongResult, delong_ci, delong_from_csv, delong_roc_test
from cmdnet.evaluation.stats.metrics import binary_metrics, macro_ovo_auc, mvi_metrics, per_fold_metrics, summarise
from cmdnet.evaluation.stats.paired import pairwise_class_delong, paired_t_over_folds
# corrected resampled t-test, Holm, the binary endpoint (any MVI / high grade), calibration, decision curves
from cmdnet.evaluation.stats.binary import (BINARY_ENDPOINT_COLUMNS, binary_endpoint_by_repeat, binary_endpoint_metrics, event_labels,
                     event_probability, fold_thresholds, pooled_auc_by_repeat, sensitivity_specificity,
                     summarise_over_repeats, youden_threshold)
from cmdnet.evaluation.stats.calibration import calibration_curve_quantile, calibration_intercept, calibration_slope
from cmdnet.evaluation.stats.corrected_t import corrected_resampled_t, corrected_t_from_csv, corrected_t_over_folds
from cmdnet.evaluation.stats.curves import calibration_curves, decision_curves
from cmdnet.evaluation.stats.decision_curve import decision_curve
from cmdnet.evaluation.stats.multiplicity import holm

__all__ = [
    "DelongResult", "binary_metrics", "bootstrap_ci", "delong_ci", "delong_from_csv", "delong_roc_test",
    "macro_ovo_auc", "mvi_metrics", "paired_bootstrap_macro_auc", "paired_t_over_folds",
    "pairwise_class_delong", "per_fold_metrics", "summarise",
]
__all__ += [
    "BINARY_ENDPOINT_COLUMNS", "binary_endpoint_by_repeat", "binary_endpoint_metrics", "calibration_curve_quantile",
    "calibration_curves", "calibration_intercept", "calibration_slope", "corrected_resampled_t",
    "corrected_t_from_csv", "corrected_t_over_folds", "decision_curve", "decision_curves", "event_labels",
    "event_probability", "fold_thresholds", "holm", "pooled_auc_by_repeat", "sensitivity_specificity",
    "summarise_over_repeats", "youden_threshold",
]
