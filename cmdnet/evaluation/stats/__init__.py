"""Statistics of both papers' tables, one concern per module (import from the module that defines a function):

- `metrics`: per-fold classification metrics (macro one-vs-one AUC, F1, accuracy, sensitivity, specificity);
- `delong`: DeLong's AUC variance, CI and test for correlated ROC curves (checked against pROC);
- `bootstrap`: stratified bootstrap CIs and the paired bootstrap of two macro AUCs;
- `paired`: paired tests between two methods (per class pair DeLong; the naive paired t-test);
- `corrected_t`: the corrected resampled t-test of Nadeau & Bengio (2003) for cross-validated comparisons;
- `multiplicity`: Holm's step-down adjustment;
- `binary`, `calibration`, `decision_curve`, `curves`: the binary endpoint (any MVI; high grade) with thresholds
  chosen on inner validation splits, calibration and decision-curve analysis.

Nothing is imported here, so a training job that needs `metrics` does not pay for SciPy and scikit-learn.
"""
