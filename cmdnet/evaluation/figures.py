"""Figures of both papers (PNG, written atomically).

Built on `matplotlib.figure.Figure` with the Agg canvas (no pyplot global state, no display needed).
Inputs are prediction frames as in docs/architecture.md (`label`, `prob_0 .. prob_{C-1}`; `patient_id` is
never drawn), per-epoch CSVs, singular-value arrays and the plain frames of `cmdnet.evaluation.stats` (calibration
bins, decision curves, AUCs with CIs).

Conventions, so that every figure can go into a paper as it is:

* curves are keyed by the names the tables print (callers pass display names such as "Our method",
  "S-pre-hbp", "3D local and non-local fusion");
* colours come from the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies),
  combined with line styles so that no two curves of a figure look alike; the `reference` method (the
  paper's proposed one) is black and thicker;
* legends lie outside the data area; AUCs are given with their 95% CI (DeLong for single curves);
* fonts are sized for a figure shown 700-1000 pixels wide, as in the Snakemake report.
"""

from __future__ import annotations

import functools
import textwrap
from itertools import combinations
from pathlib import Path
from typing import Collection, Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import brier_score_loss, confusion_matrix, roc_curve

from cmdnet.atomic import atomic_path
from cmdnet.evaluation.stats.calibration import calibration_curve_quantile
from cmdnet.evaluation.stats.delong import delong_ci
from cmdnet.evaluation.stats.metrics import prob_columns
from cmdnet.evaluation.stats.paired import pair_score
from cmdnet.labels import MVI_CLASSES


# Okabe & Ito (2008), "Color Universal Design": the reference is black; yellow (#F0E442) is left out because
# it is nearly invisible as a thin line on white.
REFERENCE_COLOUR = "#000000"
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9")
LINESTYLES = ("solid", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))
SEQUENTIAL_CMAP = "Blues"

# Sized so that text stays about 10 px high when the report shows a three-panel figure 900 px wide.
_RC = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 11,
       "legend.title_fontsize": 11, "xtick.labelsize": 11, "ytick.labelsize": 11, "figure.titlesize": 14,
       "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False, "savefig.dpi": 150}


def _styled(draw):
    """Run a figure function under the module's font sizes (artists take rcParams when they are made)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, out_path: str | Path) -> Path:
    """Save a figure as PNG atomically; returns the path."""
    out_path = Path(out_path)
    with atomic_path(out_path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return out_path


def curve_styles(names: Sequence[str], reference: str | Collection[str] | None = None) -> dict[str, dict]:
    """Line properties per name: the reference black and thick, the others palette colour x line style.

    `reference` is one name or several (e.g. "2D fusion" and "3D fusion", one per panel).

    The i-th non-reference name gets colour `PALETTE[i % 6]` and style `LINESTYLES[(i // 6) % 4]`, so up to
    24 curves are pairwise distinct. Keys: `color`, `linestyle`, `linewidth`, `zorder`.
    """
    references = {reference} if isinstance(reference, str) else set(reference or ())
    styles, i = {}, 0
    for name in names:
        if name in references:
            styles[name] = {"color": REFERENCE_COLOUR, "linestyle": "solid", "linewidth": 2.4, "zorder": 4}
        else:
            styles[name] = {"color": PALETTE[i % len(PALETTE)], "linestyle": LINESTYLES[(i // len(PALETTE)) % 4],
                            "linewidth": 1.6, "zorder": 3}
            i += 1
    return styles


def _probs(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if "label" not in pred.columns:
        raise ValueError(f"predictions have no 'label' column; columns are {list(pred.columns)}")
    return pred["label"].to_numpy(dtype=int), pred[prob_columns(pred)].to_numpy(dtype=float)


def p_mvi(probs: np.ndarray) -> np.ndarray:
    """P(MVI) = P(M1) + P(M2) from `(n, 3)` probabilities (clipped to [0, 1] against rounding)."""
    return np.clip(np.asarray(probs, dtype=float)[:, 1:].sum(axis=1), 0.0, 1.0)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) if text else text


def _legend_below(ax, title: str | None = None, ncol: int = 1) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=ncol, title=title, alignment="left",
              handlelength=2.6)


def _auc_label(name: str, y: np.ndarray, score: np.ndarray) -> str:
    auc, lo, hi = delong_ci(y, score)
    return f"{name}: {auc:.2f} ({lo:.2f}-{hi:.2f})"


def _roc_figure(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], *,
                reference: str | Collection[str] | None,
                suptitle: str = "", note: str = "", panel_width: float = 4.4) -> Figure:
    """ROC curves of `{panel title: {name: (y, score)}}`, one panel each, with a legend row underneath.

    Styles follow the order of names within each panel (so "2D local" and "3D local" look alike); the legend
    gives AUC and 95% DeLong CI. The legends live in their own row of axes, so they never cover a curve.
    """
    n_rows = max(len(c) for c in panels.values())
    labels = {title: {name: _auc_label(name, y, score) for name, (y, score) in curves.items()}
              for title, curves in panels.items()}
    longest = max(len(label) for panel in labels.values() for label in panel.values())
    panel_width = max(panel_width, 0.5 + 0.095 * longest)  # the legend under a panel is no wider than it
    legend_height = 0.4 + 0.27 * n_rows
    height = panel_width + legend_height + (0.45 * (suptitle.count("\n") + 1) if suptitle else 0) \
        + (0.45 if note else 0)
    fig = _new_figure(panel_width * len(panels) + 0.3, height)
    axes = fig.subplots(2, len(panels), squeeze=False, height_ratios=[panel_width - 0.2, legend_height])
    for k, (title, curves) in enumerate(panels.items()):
        ax, legend_ax = axes[0, k], axes[1, k]
        styles = curve_styles(list(curves), reference)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
        for name, (y, score) in curves.items():
            fpr, tpr, _ = roc_curve(y, score)
            ax.plot(fpr, tpr, label=labels[title][name], **styles[name])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        # No fixed aspect: with one, constrained layout pushes the y label off the figure. The row heights
        # keep the panel close to square instead.
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("Sensitivity")
        ax.set_title(title)
        legend_ax.axis("off")
        legend_ax.legend(*ax.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(0.0, 1.0),
                         title="AUC (95% CI, DeLong)", alignment="left", handlelength=2.6, borderaxespad=0)
    if suptitle:
        fig.suptitle(suptitle)
    if note:
        fig.supxlabel(_wrap(note, int(24 * len(panels) + 30)), fontsize="small", color="#333333")
    return fig


@_styled
def roc_pairwise_figure(predictions: Mapping[str, pd.DataFrame], out_path: str | Path,
                        class_names: Sequence[str] = MVI_CLASSES, *, reference: str | None = None) -> Path:
    """One ROC panel per class pair (i, j) of a multi-class problem, one curve per method.

    Panel (i, j) uses only patients of classes i and j, positive = j, score p_j / (p_i + p_j) (the same
    pairwise score as `cmdnet.evaluation.stats.pairwise_class_delong`); the legend gives each curve's AUC with its 95%
    DeLong CI. The mean of the panels' AUCs is the macro one-vs-one AUC of the pooled predictions.
    """
    panels = {}
    for i, j in combinations(range(len(class_names)), 2):
        curves = {}
        for method, pred in predictions.items():
            labels, probs = _probs(pred)
            mask = (labels == i) | (labels == j)
            curves[method] = ((labels[mask] == j).astype(int), pair_score(probs[mask], i, j))
        panels[f"{class_names[j]} vs {class_names[i]}"] = curves
    fig = _roc_figure(panels, reference=reference,
                      suptitle="Pairwise ROC curves (one-vs-one), pooled out-of-fold predictions")
    return save_png(fig, out_path)


@_styled
def roc_any_mvi_figure(predictions: Mapping[str, pd.DataFrame], out_path: str | Path, *,
                       reference: str | None = None, class_names: Sequence[str] = MVI_CLASSES) -> Path:
    """Binary ROC of the clinical endpoint, no MVI vs any MVI (M0 vs M1 + M2), one curve per method.

    Positive: label > 0; score: P(MVI) = P(M1) + P(M2) (`p_mvi`). AUCs with 95% DeLong CIs in the legend.
    """
    curves = {}
    for method, pred in predictions.items():
        labels, probs = _probs(pred)
        curves[method] = ((labels > 0).astype(int), p_mvi(probs))
    score = " + ".join(f"P({c})" for c in class_names[1:])
    fig = _roc_figure({f"{class_names[0]} vs MVI ({' or '.join(class_names[1:])})": curves}, reference=reference,
                      suptitle=f"Any MVI, score P(MVI) = {score}\npooled out-of-fold predictions",
                      panel_width=4.8)
    return save_png(fig, out_path)


@_styled
def roc_binary_figure(predictions: Mapping[str, pd.DataFrame] | Mapping[str, Mapping[str, pd.DataFrame]],
                      out_path: str | Path, positive_name: str = "high grade", *,
                      reference: str | Collection[str] | None = None, note: str = "") -> Path:
    """Binary ROC curves (score = `prob_1`, positive = label 1), one per method, AUC with 95% DeLong CI.

    `predictions` is `{name: frame}` (one panel) or `{panel title: {name: frame}}` (one panel per entry, e.g.
    "2D" and "3D"; the k-th name of every panel gets the same colour and line style). `note` is printed
    under the panels, e.g. to say that the curves pool one repeat's folds while the tables average per-fold
    AUCs.
    """
    nested = bool(predictions) and all(isinstance(v, Mapping) for v in predictions.values())
    panels = predictions if nested else {f"Positive: {positive_name}": predictions}
    curves = {title: {name: (_probs(pred)[0], _probs(pred)[1][:, 1]) for name, pred in panel.items()}
              for title, panel in panels.items()}
    fig = _roc_figure(curves, reference=reference, note=note,
                      suptitle=f"ROC curves, positive: {positive_name}" if nested else "", panel_width=4.6)
    return save_png(fig, out_path)


@_styled
def confusion_matrix_figure(pred: pd.DataFrame, out_path: str | Path,
                            class_names: Sequence[str] = MVI_CLASSES, title: str = "Confusion matrix",
                            normalise: bool = True) -> Path:
    """Confusion matrix of the argmax prediction (rows: true class; row-normalised when `normalise`).

    Each cell prints the row fraction and the patient count; the title wraps so it never runs into the
    colour bar.
    """
    labels, probs = _probs(pred)
    cm = confusion_matrix(labels, probs.argmax(axis=1), labels=list(range(len(class_names))))
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    fig = _new_figure(5.0, 4.6)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap=SEQUENTIAL_CMAP, vmin=0, vmax=1 if normalise else None)
    fig.colorbar(im, ax=ax, shrink=0.85, label="Fraction of the true class" if normalise else "Patients")
    top = 1 if normalise else max(shown.max(), 1)
    for (r, c), count in np.ndenumerate(cm):
        text = f"{shown[r, c]:.2f}\n(n = {count})" if normalise else str(count)
        ax.text(c, r, text, ha="center", va="center", color="white" if shown[r, c] > 0.6 * top else "black")
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("Predicted class (most probable)")
    ax.set_ylabel("True class")
    ax.spines[:].set_visible(False)
    ax.set_title(_wrap(title, 38), loc="left")
    return save_png(fig, out_path)


# ---------------------------------------------------------------- calibration

CALIBRATION_COLUMNS = ("bin", "mean_predicted", "observed", "count", "ci_low", "ci_high")


def default_calibration_bins(n_patients: int) -> int:
    """About 15 patients per bin, between 3 and 10 bins (5 bins for the default cohort of 80)."""
    return int(np.clip(n_patients // 15, 3, 10))


@_styled
def calibration_curves_figure(curves: Mapping[str, pd.DataFrame], out_path: str | Path, *,
                              brier: Mapping[str, float] | None = None,
                              predicted: Mapping[str, np.ndarray] | None = None, reference: str | None = None,
                              xlabel: str = "Predicted P(MVI) = P(M1) + P(M2)",
                              ylabel: str = "Observed MVI rate (M1 or M2)",
                              title: str = "Calibration of P(MVI), quantile bins") -> Path:
    """Reliability diagrams, one small panel per method (curves on one axes would hide each other).

    `curves[name]`: a frame with columns `mean_predicted`, `observed`, `count`, `ci_low`, `ci_high` (and
    `bin`), one row per bin, e.g. quantile bins of the pooled out-of-fold predictions. Each panel draws the
    observed rate against the mean prediction with its interval as an error bar, the diagonal of perfect
    calibration, the Brier score (`brier[name]`) and the bins' patient count in the title (beside each point
    when the counts differ), and a rug of the individual predictions (`predicted[name]`).
    """
    if not curves:
        raise ValueError("no calibration curves to draw")
    for name, frame in curves.items():
        missing = [c for c in CALIBRATION_COLUMNS[1:] if c not in frame.columns]
        if missing:
            raise ValueError(f"calibration curve of {name!r} lacks columns {missing}; has {list(frame.columns)}")
    styles = curve_styles(list(curves), reference)
    ncols = min(4, len(curves))
    nrows = -(-len(curves) // ncols)
    fig = _new_figure(3.0 * ncols + 0.4, 3.2 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for ax, (name, frame) in zip(axes.flat, curves.items()):
        colour = styles[name]["color"]
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
        x, y = frame["mean_predicted"].to_numpy(float), frame["observed"].to_numpy(float)
        err = np.vstack([y - frame["ci_low"].to_numpy(float), frame["ci_high"].to_numpy(float) - y])
        ax.errorbar(x, y, yerr=np.clip(err, 0, None), color=colour, marker="o", markersize=4.5, linewidth=1.4,
                    capsize=2.5)
        counts = frame["count"].astype(int).to_numpy()
        if len(set(counts)) > 1:  # equal counts (quantile bins) go into the title instead of beside each point
            for xi, yi, n in zip(x, y, counts):
                ax.annotate(f"{n}", (xi, yi), textcoords="offset points", xytext=(5, -11), fontsize=9,
                            color="#444444")
        if predicted is not None and name in predicted:
            ax.plot(np.asarray(predicted[name], float), np.full(len(predicted[name]), -0.025), "|", color=colour,
                    markersize=6, alpha=0.6, clip_on=False)
        facts = [f"{len(counts)} bins of {counts[0]}" if len(set(counts)) == 1 else f"{len(counts)} bins"]
        if brier is not None and name in brier:
            facts.insert(0, f"Brier {brier[name]:.3f}")
        ax.set_title(f"{name}\n{', '.join(facts)}", fontsize=11, fontweight="bold" if name == reference else "normal")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1.05)
        ax.set_aspect("equal")
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    fig.supxlabel(xlabel)
    fig.supylabel(ylabel)
    fig.suptitle(f"{title}: observed rate with 95% interval (bins of equal patient counts unless numbered)")
    return save_png(fig, out_path)


def calibration_figure(predictions: Mapping[str, pd.DataFrame], out_path: str | Path, n_bins: int | None = None,
                       *, reference: str | None = None) -> Path:
    """Reliability diagram of M0 vs MVI for each method: P(MVI) = p_1 + p_2 against the observed MVI rate.

    Quantile bins (`n_bins`, default `default_calibration_bins(n)`: equal counts, so no bin holds 1-3
    patients) with Wilson 95% intervals and counts; Brier score of P(MVI) per method.
    """
    curves, brier, predicted = {}, {}, {}
    for method, pred in predictions.items():
        labels, probs = _probs(pred)
        y, p = (labels > 0).astype(int), p_mvi(probs)
        curves[method] = calibration_curve_quantile(y, p, n_bins or default_calibration_bins(len(y)))
        brier[method] = float(brier_score_loss(y, p))
        predicted[method] = p
    return calibration_curves_figure(curves, out_path, brier=brier, predicted=predicted, reference=reference)


# ---------------------------------------------------------------- decision curves

@_styled
def decision_curve_figure(curves: Mapping[str, pd.DataFrame], out_path: str | Path, *,
                          treat_all: pd.DataFrame | None = None, reference: str | None = None, outcome: str = "MVI",
                          title: str = "Decision curves, pooled out-of-fold predictions") -> Path:
    """Net benefit against threshold probability for several methods, with treat-all and treat-none.

    `curves[name]`: a frame with columns `threshold` (pt in [0, 1)) and `net_benefit`
    (TP/n - FP/n * pt / (1 - pt)), e.g. from `cmdnet.evaluation.stats.curves.decision_curves`, which also gives
    the treat-all curve (`treat_all`, same columns); treat-none is 0. The y axis is cut a little below 0, where treat-all
    falls steeply and would otherwise flatten every other curve.
    """
    if not curves:
        raise ValueError("no decision curves to draw")
    for name, frame in curves.items():
        missing = [c for c in ("threshold", "net_benefit") if c not in frame.columns]
        if missing:
            raise ValueError(f"decision curve of {name!r} lacks columns {missing}; has {list(frame.columns)}")
    styles = curve_styles(list(curves), reference)
    fig = _new_figure(7.6, 4.8)
    ax = fig.subplots()
    thresholds = np.unique(np.concatenate([f["threshold"].to_numpy(float) for f in curves.values()]))
    top = max(float(f["net_benefit"].max()) for f in curves.values())
    if treat_all is not None:
        ax.plot(treat_all["threshold"], treat_all["net_benefit"], color="#777777", linewidth=1.4,
                linestyle=(0, (4, 2)), label=f"Treat all (everyone has {outcome})")
        top = max(top, float(treat_all["net_benefit"].max()))
    ax.axhline(0.0, color="#777777", linewidth=1.4, linestyle=":", label="Treat none")
    for name, frame in curves.items():
        ax.plot(frame["threshold"], frame["net_benefit"], label=name, **styles[name])
    top = max(top, 0.01)
    ax.set_ylim(-0.15 * top, 1.1 * top)
    ax.set_xlim(float(thresholds.min()), float(thresholds.max()))
    ax.set_xlabel(f"Threshold probability of {outcome}")
    ax.set_ylabel("Net benefit")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save_png(fig, out_path)


# ---------------------------------------------------------------- AUC with CIs

@_styled
def auc_interval_figure(aucs: pd.DataFrame, out_path: str | Path, *, reference: str | None = None,
                        xlabel: str = "Pooled out-of-fold macro one-vs-one AUC (95% bootstrap CI)",
                        title: str = "AUC of every method", chance: float = 0.5) -> Path:
    """A forest plot: one row per method, its AUC as a point and its CI as a bar, in the frame's order.

    `aucs`: columns `name` (the tables' names), `auc`, `ci_low`, `ci_high`, optional `group` (e.g.
    "Table 1", "Table 2", "Teacher (uses clinical data)"; rows are kept in order and groups separated by a
    gap and labelled). The reference row is black and bold; the chance level is a dotted line.
    """
    missing = [c for c in ("name", "auc", "ci_low", "ci_high") if c not in aucs.columns]
    if missing:
        raise ValueError(f"AUC frame lacks columns {missing}; has {list(aucs.columns)}")
    frame = aucs.reset_index(drop=True)
    groups = frame["group"].tolist() if "group" in frame.columns else [""] * len(frame)
    positions, labels, y = [], [], 0.0
    for i, group in enumerate(groups):
        if i > 0 and group != groups[i - 1]:
            y += 0.8
        positions.append(y)
        y += 1
    fig = _new_figure(7.4, 0.95 + 0.3 * y)
    ax = fig.subplots()
    for pos, row, group in zip(positions, frame.itertuples(index=False), groups):
        is_ref = row.name == reference
        colour = REFERENCE_COLOUR if is_ref else PALETTE[0]
        hollow = "clinical" in str(group).lower()
        ax.errorbar(row.auc, pos, xerr=[[row.auc - row.ci_low], [row.ci_high - row.auc]], color=colour,
                    marker="s" if hollow else "o", markerfacecolor="white" if hollow else colour, markersize=6,
                    capsize=3, linewidth=1.6)
        ax.annotate(f"{row.auc:.2f} ({row.ci_low:.2f}-{row.ci_high:.2f})", (1.0, pos),
                    xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points", va="center",
                    fontsize=9, fontweight="bold" if is_ref else "normal")
        labels.append(row.name)
    for i, group in enumerate(groups):
        if group and (i == 0 or group != groups[i - 1]):
            ax.annotate(group, (0.0, positions[i] - 0.75), xycoords=("axes fraction", "data"), fontsize=9,
                        style="italic", color="#444444", va="center")
    ax.axvline(chance, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(positions, labels)
    for tick, name in zip(ax.get_yticklabels(), labels):
        if name == reference:
            tick.set_fontweight("bold")
    ax.set_ylim(positions[-1] + 0.7, -1.2)
    low = min(chance, float(frame["ci_low"].min()))
    ax.set_xlim(max(0.0, low - 0.05), min(1.0, float(frame["ci_high"].max()) + 0.05))
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left")
    return save_png(fig, out_path)


# ---------------------------------------------------------------- training curves

# How the loss terms of history.csv read in a legend (`train_<term>`: the weighted term as it enters the
# training objective). Unknown terms are shown by their key.
LOSS_TERM_NAMES = {
    "loss": "total objective", "focal": "focal (supervised)", "teacher_focal": "teacher focal (joint)",
    "class_kd": "class-level KD (Eq. 4)", "feature_kd": "feature-level KD (Eq. 5)",
    "sp_kd": "similarity-preserving KD", "clinical": "L_clinical", "stagewise": "stage-wise auxiliary",
}
_METRIC_NAMES = {"val_auc": "macro one-vs-one AUC", "val_accuracy": "accuracy"}
_OTHER_NAMES = {"val_loss": "cross-entropy", "lr": "learning rate"}
_NOT_PLOTTED = {"epoch", "selected", "seconds"}


@_styled
def training_curves_figure(csv_path: str | Path, out_path: str | Path, title: str = "Training curves") -> Path:
    """Per-epoch training log (`history.csv`) in panels of like quantities.

    * training objective: every `train_<term>` column (weighted, as it enters the total; `train_loss` is the
      total, drawn black);
    * validation cross-entropy (`val_loss`) on its own axes: it is not the training objective (focal loss
      plus distillation terms), so the two are not comparable;
    * validation metrics in [0, 1] (`val_auc`, `val_accuracy`), chance AUC dotted;
    * learning rate (`lr`);
    * any other numeric column in a last panel.
    The epoch chosen on the inner validation split (`selected`) is a dotted vertical line in every panel
    and a star on the validation curves; the mean `seconds` per epoch goes into the subtitle.
    """
    return save_png(_training_curves(pd.read_csv(csv_path), title, source=str(csv_path)), out_path)


def _training_curves(frame: pd.DataFrame, title: str, source: str = "training log") -> Figure:
    if "epoch" not in frame.columns:
        raise ValueError(f"{source}: training log has no 'epoch' column; columns are {list(frame.columns)}")
    numeric = [c for c in frame.columns if c not in _NOT_PLOTTED and pd.api.types.is_numeric_dtype(frame[c])
               and frame[c].dtype != bool]
    if not numeric:
        raise ValueError(f"{source}: training log has no numeric columns besides 'epoch'")
    train = [c for c in numeric if c.startswith("train_")]
    val_loss = [c for c in numeric if c == "val_loss"]
    metrics = [c for c in numeric if c in _METRIC_NAMES]
    lr = [c for c in numeric if c == "lr"]
    other = [c for c in numeric if c not in {*train, *val_loss, *metrics, *lr}]
    panels = [(cols, name) for cols, name in (
        (train, "Training objective (weighted terms)"), (val_loss, "Validation cross-entropy"),
        (metrics, "Validation metrics"), (lr, "Learning rate"), (other, "Other logged values")) if cols]
    frame = frame.reset_index(drop=True)
    # A stage-wise log (Concat_2S) holds each stage's epochs one after another, each stage with its own
    # selected epoch: its x axis runs over all of them, stages separated by dashed lines.
    stages = frame["stage"].astype(str) if "stage" in frame.columns else None
    x = (pd.Series(range(1, len(frame) + 1), dtype=float) if stages is not None
         else frame["epoch"].astype(float))
    chosen = (frame["selected"].astype(bool) if "selected" in frame.columns
              else pd.Series(False, index=frame.index))

    ncols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // ncols)
    fig = _new_figure(5.2 * ncols, 3.9 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    epochs = x.to_numpy()
    for ax, (cols, name) in zip(axes.flat, panels):
        if cols is train:
            terms = [c for c in cols if c != "train_loss"]
            styles = curve_styles(["train_loss", *terms], "train_loss")
            for c in ([c for c in cols if c == "train_loss"] + terms):
                ax.plot(epochs, frame[c], marker=".", label=LOSS_TERM_NAMES.get(c[len("train_"):], c), **styles[c])
            ax.set_ylabel("Loss (mean over the epoch)")
        elif cols is metrics:
            styles = curve_styles(cols)
            for c in cols:
                ax.plot(epochs, frame[c], marker=".", label=_METRIC_NAMES[c], **styles[c])
            if "val_auc" in cols:
                ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance AUC")
            ax.set_ylim(0, 1.02)
            ax.set_ylabel("Inner validation split")
        else:
            styles = curve_styles(cols)
            for c in cols:
                ax.plot(epochs, frame[c], marker=".", label=_OTHER_NAMES.get(c, c), **styles[c])
            ax.set_ylabel({"Validation cross-entropy": "Cross-entropy (inner validation)",
                           "Learning rate": "Learning rate"}.get(name, "Value"))
        for at in x[chosen]:
            ax.axvline(at, color="grey", linestyle=":", linewidth=1.2)
        if chosen.any() and (cols is metrics or cols is val_loss):
            for c in cols:
                ax.plot(x[chosen], frame.loc[chosen, c], marker="*", markersize=13, color="black",
                        linestyle="none", zorder=5, label="selected epoch" if c == cols[0] else None)
        if stages is not None:
            _mark_stages(ax, stages, x)
        ax.set_title(name, loc="left")
        ax.set_xlabel("Epoch" if stages is None else "Epoch (the stages one after another)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(cols) > 1 or cols is metrics or (chosen.any() and cols is val_loss):
            _legend_below(ax, ncol=2)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    if stages is None:
        facts = [f"{len(frame)} epochs"]
        if chosen.any():
            facts.append(f"selected epoch {int(frame.loc[chosen, 'epoch'].iloc[0])} (inner validation split)")
    else:
        facts = [f"{stages.nunique()} stages, {len(frame)} epochs"]
        if chosen.any():
            facts.append("selected " + ", ".join(
                f"{stage} {int(epoch)}" for stage, epoch in zip(stages[chosen], frame.loc[chosen, "epoch"])))
    if "seconds" in frame.columns:
        facts.append(f"{frame['seconds'].mean():.1f} s per epoch")
    fig.suptitle(f"{title}\n" + textwrap.fill(", ".join(facts), 110))
    return fig


def _mark_stages(ax: Axes, stages: pd.Series, x: pd.Series) -> None:
    """Dashed lines between the stages of a stage-wise log and each stage's name above its epochs."""
    starts = stages.ne(stages.shift()).to_numpy()
    for at in x[starts].iloc[1:]:
        ax.axvline(at - 0.5, color="grey", linestyle="--", linewidth=1)
    for stage in dict.fromkeys(stages):
        where = x[stages == stage]
        ax.text((where.min() + where.max()) / 2, 0.97, stage, transform=ax.get_xaxis_transform(), ha="center",
                va="top", fontsize=8, color="dimgrey", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})


# ---------------------------------------------------------------- grading

@_styled
def cifa_spectra_figure(singular_values: Mapping[str, Sequence[float]], out_path: str | Path,
                        title: str = "CIFA spectra") -> Path:
    """Grouped bar chart of singular values (index k on x), one bar series per named spectrum.

    Components after the last one above 0.1% of the largest value are not drawn (numerically zero).
    """
    if not singular_values:
        raise ValueError("no spectra to plot")
    arrays = {name: np.asarray(v, dtype=float).ravel() for name, v in singular_values.items()}
    top = max((float(a.max()) for a in arrays.values() if a.size), default=0.0)
    shown = 1 + max((int(np.flatnonzero(a > 1e-3 * top).max()) for a in arrays.values() if (a > 1e-3 * top).any()),
                    default=0)
    singular_values = {name: a[:shown] for name, a in arrays.items()}
    fig = _new_figure(7.4, 4.4)
    ax = fig.subplots()
    width = 0.8 / len(singular_values)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(singular_values))]
    hatches = ["", "//", "..", "xx"]
    for n, (name, values) in enumerate(singular_values.items()):
        values = np.asarray(values, dtype=float).ravel()
        ax.bar(np.arange(values.size) + n * width, values, width=width, label=name, color=colours[n],
               hatch=hatches[(n // len(PALETTE)) % 4], edgecolor="white", linewidth=0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Component index k")
    ax.set_ylabel("Singular value")
    ax.set_title(title, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save_png(fig, out_path)
