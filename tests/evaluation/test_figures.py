"""Every figure function writes a real, non-empty PNG (checked by its signature and size)."""

import numpy as np
import pandas as pd
import pytest

from cmdnet import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_roc_confusion_calibration(tmp_path):
    preds = {"ours": _pred(0), "concat": _pred(1)}
    _assert_png(figures.roc_pairwise_figure(preds, tmp_path / "roc.png"))
    _assert_png(figures.confusion_matrix_figure(preds["ours"], tmp_path / "cm.png"))
    _assert_png(figures.calibration_figure(preds, tmp_path / "cal.png", n_bins=5))
    _assert_png(figures.roc_binary_figure({"3D fusion": _pred(2, n_classes=2)}, tmp_path / "roc_bin.png"))
    assert not list(tmp_path.glob(".*"))


def test_training_curves_and_spectra(tmp_path):
    log = tmp_path / "log.csv"
    pd.DataFrame({"epoch": range(1, 6), "train_loss": [1.0, 0.8, 0.7, 0.6, 0.55],
                  "val_loss": [1.1, 0.9, 0.85, 0.8, 0.82], "val_auc": [0.5, 0.6, 0.65, 0.7, 0.69],
                  "note": list("abcde")}).to_csv(log, index=False)
    _assert_png(figures.training_curves_figure(log, tmp_path / "curves.png"))
    _assert_png(figures.cifa_spectra_figure({"common": [3.0, 1.5, 0.4], "individual": [2.0, 0.7, 0.1]},
                                            tmp_path / "spectra.png"))
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"step": [1, 2]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="epoch"):
        figures.training_curves_figure(bad, tmp_path / "x.png")
