"""Every figure type renders a real PNG on tiny data; the conventions that make a figure readable hold:
distinct colour-blind-safe styles, the reference in black, legends outside the data, losses and metrics on
separate axes, quantile calibration bins with intervals."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from cmdnet.evaluation import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TABLE1 = ["Concat", "3DCNN", "LSTM", "M2Net", "Concat_2S", "KD_ours", "SP_ours", "Our method"]


def _pred(seed, n_classes=3, n=45):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return pd.DataFrame({"patient_id": [f"SYN{i:03d}" for i in range(n)], "label": labels,
                         **{f"prob_{c}": probs[:, c] for c in range(n_classes)}})


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000, f"{path} is not a plausible PNG"


def _history(columns=None):
    epochs = np.arange(1, 7)
    frame = pd.DataFrame({"epoch": epochs, "train_focal": 0.6 / epochs, "train_class_kd": 0.2 / epochs,
                          "train_feature_kd": 0.4 / epochs, "train_sp_kd": 0.3 / epochs,
                          "train_clinical": 0.1 / epochs, "train_loss": 1.6 / epochs,
                          "val_loss": 1.1 - 0.02 * epochs, "val_auc": 0.5 + 0.03 * epochs,
                          "val_accuracy": 0.4 + 0.03 * epochs, "lr": 1e-3 / epochs, "seconds": 1.0 + 0 * epochs,
                          "selected": epochs == 4})
    return frame if columns is None else frame[columns]


def test_every_figure_type_renders_on_tiny_data(tmp_path):
    preds = {name: _pred(i) for i, name in enumerate(TABLE1)}
    _assert_png(figures.roc_pairwise_figure(preds, tmp_path / "roc.png", reference="Our method"))
    _assert_png(figures.roc_any_mvi_figure(preds, tmp_path / "roc_any.png", reference="Our method"))
    _assert_png(figures.confusion_matrix_figure(preds["Our method"], tmp_path / "cm.png",
                                                title="Our method: confusion matrix (out-of-fold, row-normalised)"))
    _assert_png(figures.calibration_figure(preds, tmp_path / "cal.png", reference="Our method"))
    grade = {dim: {f"{dim} {m}": _pred(k, n_classes=2) for k, m in enumerate(["local", "non-local", "fusion"])}
             for dim in ("2D", "3D")}
    _assert_png(figures.roc_binary_figure(grade, tmp_path / "roc_grade.png", note="pooled over one repeat"))
    _assert_png(figures.roc_binary_figure(grade["3D"], tmp_path / "roc_bin.png"))

    # The statistics module's frames: calibration bins and decision curves.
    bins = pd.DataFrame({"bin": [0, 1, 2], "mean_predicted": [0.2, 0.5, 0.8], "observed": [0.25, 0.45, 0.9],
                         "count": [15, 15, 15], "ci_low": [0.1, 0.25, 0.7], "ci_high": [0.5, 0.7, 0.97]})
    _assert_png(figures.calibration_curves_figure({"S-pre-hbp": bins, "Our method": bins}, tmp_path / "cal2.png",
                                                  brier={"Our method": 0.2}, reference="Our method"))
    t = np.linspace(0.01, 0.8, 40)
    curves = {"S-pre-hbp": pd.DataFrame({"threshold": t, "net_benefit": 0.5 - 0.6 * t}),
              "Our method": pd.DataFrame({"threshold": t, "net_benefit": 0.52 - 0.55 * t})}
    treat_all = pd.DataFrame({"threshold": t, "net_benefit": 0.53 - 0.47 * t / (1 - t)})
    _assert_png(figures.decision_curve_figure(curves, tmp_path / "dca.png", treat_all=treat_all,
                                              reference="Our method"))
    aucs = pd.DataFrame({"name": ["Concat", "Our method", "Teacher"], "auc": [0.6, 0.7, 0.8],
                         "ci_low": [0.5, 0.6, 0.7], "ci_high": [0.7, 0.8, 0.9],
                         "group": ["Table 1", "Table 1", "Teacher (uses clinical data)"]})
    _assert_png(figures.auc_interval_figure(aucs, tmp_path / "auc.png", reference="Our method"))

    _history().to_csv(tmp_path / "history.csv", index=False)
    _assert_png(figures.training_curves_figure(tmp_path / "history.csv", tmp_path / "curves.png", title="Our method"))
    _assert_png(figures.cifa_spectra_figure({"common": [3.0, 1.5, 0.4], "individual": [2.0, 0.7, 0.1]},
                                            tmp_path / "spectra.png"))
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_curve_styles_are_pairwise_distinct_and_the_reference_is_black():
    names = [f"method {k}" for k in range(14)] + ["Our method"]
    styles = figures.curve_styles(names, reference="Our method")
    looks = {(s["color"], str(s["linestyle"])) for s in styles.values()}
    assert len(looks) == len(names), "two curves share colour and line style"
    assert styles["Our method"]["color"] == "#000000"
    assert styles["Our method"]["linewidth"] > max(s["linewidth"] for n, s in styles.items() if n != "Our method")
    okabe_ito = {"#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000"}
    assert {s["color"] for s in styles.values()} <= okabe_ito, "colours must come from the Okabe-Ito palette"


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_roc_legends_lie_outside_the_curves_axes():
    rng = np.random.default_rng(0)
    curves = {name: (np.arange(40) % 2, rng.random(40)) for name in TABLE1}
    fig = figures._roc_figure({"M1 vs M0": curves, "M2 vs M0": curves}, reference="Our method")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    roc_axes = [ax for ax in fig.axes if ax.get_title()]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(roc_axes) == 2 and len(legends) == 2
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(_overlaps(box, ax.get_window_extent(renderer)) for ax in roc_axes), "legend covers curves"
    labels = [t.get_text() for t in legends[0].get_texts()]
    assert labels[-1].startswith("Our method: ") and "(" in labels[-1], "legend must give AUC with its CI"


def test_training_curves_keep_losses_metrics_and_schedule_on_separate_axes():
    with matplotlib.rc_context(figures._RC):
        fig = figures._training_curves(_history(), "Our method")
    panels = {ax.get_title(loc="left"): {line.get_label() for line in ax.get_lines()} for ax in fig.axes
              if ax.get_visible()}
    train = panels["Training objective (weighted terms)"]
    assert {"total objective", "focal (supervised)", "class-level KD (Eq. 4)", "feature-level KD (Eq. 5)",
            "similarity-preserving KD", "L_clinical"} <= train
    assert "cross-entropy" in panels["Validation cross-entropy"] and "cross-entropy" not in train
    assert {"macro one-vs-one AUC", "accuracy"} <= panels["Validation metrics"]
    assert "learning rate" in panels["Learning rate"]
    everything = set().union(*panels.values())
    assert not {"seconds", "selected", "lr"} & everything, "seconds/selected/lr must not be drawn as curves"
    assert "selected epoch 4" in fig.get_suptitle(), fig.get_suptitle()


def test_training_curves_accept_an_old_log_and_refuse_one_without_epochs(tmp_path):
    old = tmp_path / "old.csv"
    pd.DataFrame({"epoch": range(1, 4), "train_loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.85],
                  "val_auc": [0.5, 0.6, 0.65], "note": list("abc")}).to_csv(old, index=False)
    _assert_png(figures.training_curves_figure(old, tmp_path / "old.png"))
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"step": [1, 2]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="epoch"):
        figures.training_curves_figure(bad, tmp_path / "x.png")


def test_the_calibration_figure_bins_by_quantiles_about_15_patients_each():
    assert figures.default_calibration_bins(80) == 5
    assert figures.default_calibration_bins(270) == 10 and figures.default_calibration_bins(20) == 3


def test_training_curves_of_a_stage_wise_log_show_every_stage_and_its_selected_epoch(tmp_path):
    """Concat_2S logs each stage's epochs one after another (epoch numbers repeat), one selected epoch per stage."""
    log = pd.concat([pd.DataFrame({"stage": stage, "epoch": range(1, 5), "train_focal": [0.5, 0.45, 0.4, 0.38],
                                   "val_loss": [1.1, 1.0, 0.98, 0.99], "val_auc": [0.5, 0.6, 0.65, 0.64],
                                   "selected": [False, False, True, False]})
                     for stage in ("stage1_pre", "stage1_hbp", "stage2")], ignore_index=True)
    with matplotlib.rc_context(figures._RC):
        fig = figures._training_curves(log, "Concat_2S")
    val = next(ax for ax in fig.axes if ax.get_title(loc="left") == "Validation metrics")
    stars = next(line for line in val.get_lines() if line.get_label() == "selected epoch")
    assert list(stars.get_xdata()) == [3, 7, 11], "one star per stage, on a running epoch axis"
    assert {"stage1_pre", "stage1_hbp", "stage2"} <= {t.get_text() for t in val.texts}
    assert "stage2 3" in fig.get_suptitle(), fig.get_suptitle()
    log.to_csv(tmp_path / "history.csv", index=False)
    _assert_png(figures.training_curves_figure(tmp_path / "history.csv", tmp_path / "curves.png"))
