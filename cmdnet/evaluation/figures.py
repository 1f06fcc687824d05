"""Figures of both papers (PNG, written atomically).

Built on `matplotlib.figure.Figure` with the Agg canvas (no pyplot global state, no display needed).
Inputs are prediction frames as in docs/architecture.md (`label`, `prob_0 .. prob_{C-1}`; `patient_id` is
never drawn), per-epoch CSVs and singular-value arrays.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from cmdnet.atomic import atomic_path
from cmdnet.labels import MVI_CLASSES
from cmdnet.evaluation.stats.metrics import prob_columns
from cmdnet.evaluation.stats.paired import pair_score



def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, out_path: str | Path) -> Path:
    """Save a figure as PNG atomically; returns the path."""
    out_path = Path(out_path)
    with atomic_path(out_path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return out_path


def _probs(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if "label" not in pred.columns:
        raise ValueError(f"predictions have no 'label' column; columns are {list(pred.columns)}")
    return pred["label"].to_numpy(dtype=int), pred[prob_columns(pred)].to_numpy(dtype=float)


def _roc_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("Sensitivity (true positive rate)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")


def roc_pairwise_figure(predictions: Mapping[str, pd.DataFrame], out_path: str | Path,
                        class_names: Sequence[str] = MVI_CLASSES) -> Path:
    """One ROC panel per class pair (i, j) of a multi-class problem, one curve per method.

    Panel (i, j) uses only patients of classes i and j, positive = j, score p_j / (p_i + p_j) (the same
    pairwise score as `cmdnet.evaluation.stats.pairwise_class_delong`); the legend gives each curve's AUC.
    """
    pairs = list(combinations(range(len(class_names)), 2))
    fig = _new_figure(4.2 * len(pairs), 4.4)
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (i, j) in zip(axes, pairs):
        for method, pred in predictions.items():
            labels, probs = _probs(pred)
            mask = (labels == i) | (labels == j)
            y = (labels[mask] == j).astype(int)
            s = pair_score(probs[mask], i, j)
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{method} (AUC {roc_auc_score(y, s):.3f})")
        _roc_axes(ax, f"{class_names[j]} vs {class_names[i]}")
    fig.suptitle("Pairwise ROC curves (one-vs-one)")
    return save_png(fig, out_path)


def roc_binary_figure(predictions: Mapping[str, pd.DataFrame], out_path: str | Path,
                      positive_name: str = "high grade") -> Path:
    """Binary ROC curves (score = `prob_1`, positive = label 1), one per method."""
    fig = _new_figure(5.0, 5.0)
    ax = fig.subplots()
    for method, pred in predictions.items():
        labels, probs = _probs(pred)
        fpr, tpr, _ = roc_curve(labels, probs[:, 1])
        ax.plot(fpr, tpr, label=f"{method} (AUC {roc_auc_score(labels, probs[:, 1]):.3f})")
    _roc_axes(ax, f"ROC, positive = {positive_name}")
    return save_png(fig, out_path)


def confusion_matrix_figure(pred: pd.DataFrame, out_path: str | Path,
                            class_names: Sequence[str] = MVI_CLASSES, title: str = "Confusion matrix",
                            normalise: bool = True) -> Path:
    """Confusion matrix of the argmax prediction (rows: true class; row-normalised when `normalise`)."""
    labels, probs = _probs(pred)
    cm = confusion_matrix(labels, probs.argmax(axis=1), labels=list(range(len(class_names))))
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    fig = _new_figure(4.6, 4.0)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    fig.colorbar(im, ax=ax, label="fraction of true class" if normalise else "patients")
    for (r, c), count in np.ndenumerate(cm):
        text = f"{shown[r, c]:.2f}\n(n={count})" if normalise else str(count)
        ax.text(c, r, text, ha="center", va="center",
                color="white" if shown[r, c] > 0.6 * (1 if normalise else shown.max()) else "black")
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(title)
    return save_png(fig, out_path)


def calibration_figure(predictions: Mapping[str, pd.DataFrame], out_path: str | Path, n_bins: int = 10) -> Path:
    """Reliability diagram of M0 vs MVI: P(MVI) = p_1 + p_2 against the observed MVI (M1 or M2) rate.

    Bins of equal width (`sklearn.calibration.calibration_curve`); a histogram of P(MVI) below.
    """
    fig = _new_figure(5.0, 6.0)
    ax, hist = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="perfectly calibrated")
    for method, pred in predictions.items():
        labels, probs = _probs(pred)
        p_mvi = np.clip(probs[:, 1:].sum(axis=1), 0.0, 1.0)
        frac, mean_pred = calibration_curve((labels > 0).astype(int), p_mvi, n_bins=n_bins, strategy="uniform")
        ax.plot(mean_pred, frac, marker="o", label=method)
        hist.hist(p_mvi, bins=n_bins, range=(0, 1), histtype="step", label=method)
    ax.set_ylabel("Observed fraction with MVI (M1 or M2)")
    ax.set_title("Calibration: M0 vs MVI")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize="small")
    hist.set_xlabel("Predicted P(MVI) = p(M1) + p(M2)")
    hist.set_ylabel("Patients")
    hist.set_xlim(0, 1)
    return save_png(fig, out_path)


def training_curves_figure(csv_path: str | Path, out_path: str | Path, title: str = "Training curves") -> Path:
    """Plot every numeric column of a per-epoch CSV against `epoch`: losses (names containing "loss")
    in the left panel, other metrics in the right panel."""
    frame = pd.read_csv(csv_path)
    if "epoch" not in frame.columns:
        raise ValueError(f"{csv_path}: training log has no 'epoch' column; columns are {list(frame.columns)}")
    numeric = [c for c in frame.columns if c != "epoch" and pd.api.types.is_numeric_dtype(frame[c])]
    if not numeric:
        raise ValueError(f"{csv_path}: training log has no numeric columns besides 'epoch'")
    losses = [c for c in numeric if "loss" in c.lower()]
    others = [c for c in numeric if c not in losses]
    panels = [(cols, label) for cols, label in ((losses, "Loss"), (others, "Metric")) if cols]
    fig = _new_figure(5.0 * len(panels), 4.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (cols, label) in zip(axes, panels):
        for c in cols:
            ax.plot(frame["epoch"], frame[c], label=c)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return save_png(fig, out_path)


def cifa_spectra_figure(singular_values: Mapping[str, Sequence[float]], out_path: str | Path,
                        title: str = "CIFA spectra") -> Path:
    """Grouped bar chart of singular values (index k on x), one bar series per named spectrum."""
    if not singular_values:
        raise ValueError("no spectra to plot")
    fig = _new_figure(6.0, 4.0)
    ax = fig.subplots()
    width = 0.8 / len(singular_values)
    for n, (name, values) in enumerate(singular_values.items()):
        values = np.asarray(values, dtype=float).ravel()
        ax.bar(np.arange(values.size) + n * width, values, width=width, label=name)
    ax.set_xlabel("Component index k")
    ax.set_ylabel("Singular value")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return save_png(fig, out_path)
