"""The (repeat, fold) job and the evaluation: outputs, device policy, a failed model, tables and statistics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cmdnet.config import ConfigError
from cmdnet.data.folds import make_repeated_folds
from cmdnet.grade.evaluate import P_HOLM, P_RAW, grade_evaluation, patch_statistics
from cmdnet.grade.job import grade_fold_job
from cmdnet.grade.methods import figures_given, tables_given

PIDS = [f"P{i:02d}" for i in range(16)]
GRADE = {p: i % 2 for i, p in enumerate(PIDS)}
FALLBACK = {"P00", "P02", "P05"}   # two low-grade, one high-grade patient with a single centroid patch
TRAINING = {"iterations": 4, "batch_size": 8, "lr": 3e-3, "decay_every": 2, "local_channels": [3, 4],
            "nonlocal_channels": 4, "nonlocal_inter_channels": 4, "nonlocal_subsample": True, "feature_dim": 4,
            "common_dim": 2, "dcca_dim": 2, "dcca_pretrain_iterations": 2, "checkpoint_every": 2}
GRADE_CFG = {"methods": ["local", "nonlocal", "concat", "dcca", "cifa", "concat_aux"], "dims": ["3d"],
             "training": TRAINING}
BROKEN_JOB = (1, 2)   # dcca fails on this (repeat, fold)


def _write_inputs(root):
    rng = np.random.default_rng(0)
    counts = {p: 1 if p in FALLBACK else int(2 + rng.integers(3)) for p in PIDS}
    owner = np.array([p for p in PIDS for _ in range(counts[p])])
    patches = np.stack([rng.normal(0.6 if GRADE[p] else -0.6, 1.0, (16, 16, 16)) for p in owner]).astype(np.float32)
    np.savez(root / "grade.npz", patient_id=np.array(PIDS), images=np.zeros((16, 1, 2, 2, 2), np.float32),
             masks=np.zeros((16, 1, 2, 2, 2), np.uint8), patches=patches, patch_patient=owner,
             patch_centres_mm=np.zeros((len(owner), 3)))
    pd.DataFrame({"patient_id": PIDS, "phase": "AP", "n_patches": [counts[p] for p in PIDS],
                  "patch_fallback": [p in FALLBACK for p in PIDS],
                  "tumour_volume_mm3": [900.0 if p in FALLBACK else 9000.0 for p in PIDS]}
                 ).to_parquet(root / "manifest.parquet")
    pd.DataFrame({"patient_id": PIDS, "mvi": 0, "grade": [GRADE[p] for p in PIDS]}).to_parquet(root / "labels.parquet")
    make_repeated_folds(pd.Series(GRADE), 4, 2, seed=0).to_parquet(root / "folds.parquet")


def _run_job(root, repeat, fold, **kwargs):
    out = root / f"r{repeat}f{fold}"
    logs: list[str] = []
    grade_fold_job(root / "grade.npz", root / "labels.parquet", root / "folds.parquet", GRADE_CFG, 0, repeat, fold,
                   out / "predictions.parquet", out / "diagnostics.json", progress=logs.append, **kwargs)
    return out, logs


def _evaluate(prediction_paths, diagnostics_paths, root, out, methods):
    """Run the evaluation with the outputs the workflow would name; return the written files by short name."""
    tables = {t.key: [out / "tables" / f"{t.stem}.{ext}" for ext in ("csv", "md")] for t in tables_given(methods)}
    figures = [out / "figures" / f"{name}.png" for name in figures_given(methods)]
    named = {"per_fold": out / "metrics_per_fold.csv", "pooled_auc": out / "pooled_auc_per_repeat.csv",
             "dcca": out / "dcca_correlations.csv", "patches": out / "patch_statistics.csv"}
    grade_evaluation(prediction_paths, diagnostics_paths, manifest=root / "manifest.parquet",
                     labels=root / "labels.parquet", out_tables=tables, out_figures=figures,
                     progress=lambda s: None, **{f"out_{k}": v for k, v in named.items()})
    written = {**named, **{f"{key}_{p.suffix[1:]}": p for key, paths in tables.items() for p in paths},
               **{p.stem: p for p in figures}}
    missing = [str(p) for p in written.values() if not p.exists()]
    assert not missing, f"named outputs not written: {missing}"
    return written


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("grade")
    _write_inputs(root)
    outs, logs = [], {}
    for repeat in range(2):
        for fold in range(4):
            with pytest.MonkeyPatch.context() as mp:
                if (repeat, fold) == BROKEN_JOB:
                    mp.setattr("cmdnet.grade.fusion.dcca_loss", lambda h1, h2, r1, r2: (h1 * np.nan).sum())
                out, logs[(repeat, fold)] = _run_job(root, repeat, fold, checkpoint_path=root / f"ck{repeat}{fold}.pt")
            outs.append(out)
    written = _evaluate([o / "predictions.parquet" for o in outs], [o / "diagnostics.json" for o in outs], root,
                        root / "eval", GRADE_CFG["methods"])
    return root, outs, logs, written


def test_job_writes_predictions_and_diagnostics_and_removes_its_checkpoint(run):
    root, outs, logs, _ = run
    pred = pd.read_parquet(outs[0] / "predictions.parquet")
    assert list(pred.columns) == ["repeat", "fold", "method", "dim", "patient_id", "label", "prob_high", "error"]
    assert len(pred) == len(GRADE_CFG["methods"]) * 4
    diag = json.loads((outs[0] / "diagnostics.json").read_text())
    assert diag["device"] == "cpu" and diag["failures"] == []
    assert diag["patches"]["train"]["patients"] == 12 and diag["patches"]["test"]["patients"] == 4
    assert set(diag["models"]) == {f"{m}/3d" for m in GRADE_CFG["methods"]}
    assert len(diag["models"]["dcca/3d"]["dcca"]["final"]["heldout"]) == 2
    assert "spectra" in diag["models"]["cifa/3d"]
    assert not list(root.glob("ck*.pt")), "a finished job left its checkpoint behind"
    assert logs[(0, 0)][0].startswith("device: cpu") and "policy auto" in logs[(0, 0)][0]
    assert any(line.startswith("local/3d on cpu: iteration 4/4") for line in logs[(0, 0)])


def test_a_dcca_failure_keeps_the_jobs_other_models_and_the_tables_show_it(run):
    root, outs, _, written = run
    broken = pd.read_parquet(outs[4 * BROKEN_JOB[0] + BROKEN_JOB[1]] / "predictions.parquet")
    dcca = broken["method"] == "dcca"
    assert broken.loc[dcca, "prob_high"].isna().all() and broken.loc[dcca, "error"].str.startswith("dcca/3d").all()
    assert broken.loc[~dcca, "prob_high"].notna().all() and (broken.loc[~dcca, "error"] == "").all()

    table2 = pd.read_csv(written["table2_csv"])
    row = table2.set_index("method").loc["dcca"]
    assert (row["n_folds"], row["n_failed"], row["Folds"]) == (8, 1, "7 of 8")
    assert np.isfinite(row["Accuracy (%) mean"])
    md = (written["table2_md"]).read_text()
    assert "| Folds |" in md and "7 of 8" in md and "dcca/3d: non-finite loss" in md and "(repeat 1, fold 2)" in md
    table1 = (written["table1_md"]).read_text()
    assert "Folds" not in table1, "Table 1 has no failed model and needs no Folds column"
    pooled = pd.read_csv(written["pooled_auc"])
    assert sorted(pooled.loc[pooled["method"] == "dcca", "repeat"]) == [0], "a repeat with a failed fold was pooled"
    corr = pd.read_csv(written["dcca"])
    assert len(corr[corr["stage"] == "final"].groupby(["repeat", "fold"])) == 7


def test_tables_have_corrected_t_and_holm_p_values_against_the_proposed_model(run):
    _, _, _, written = run
    table1 = pd.read_csv(written["table1_csv"])
    assert list(table1["Method"]) == ["3D local", "3D non-local", "3D local and non-local fusion"]
    ref = table1.set_index("method").loc["cifa"]
    assert np.isnan(ref[P_RAW]) and pd.isna(ref["compared_with"]), "the reference row is tested against itself"
    others = table1[table1["method"] != "cifa"]
    assert (others["compared_with"] == "cifa").all() and others[P_RAW].between(0, 1).all()
    assert (others[P_HOLM] >= others[P_RAW] - 1e-12).all()
    assert (others["test_df"] == 7).all() and (others["test_n_folds"] == 8).all()
    assert {"test_t", "test_mean_diff", "test_ci_low", "test_ci_high"} <= set(table1.columns)
    table2 = pd.read_csv(written["table2_csv"])
    assert list(table2["Method"])[-1] == "3D common and individual feature analysis"
    assert table2.set_index("method").loc["dcca", "test_n_folds"] == 7   # the folds both models completed
    md = (written["table1_md"]).read_text()
    assert "AUC (added)" in md and "Pooled AUC [95% CI] (added)" in md and "Nadeau & Bengio" in md
    assert "same models as Table 2's last rows" in md


def test_controls_table_tests_each_control_against_its_counterpart(run):
    _, _, _, written = run
    controls = pd.read_csv(written["controls_csv"])
    assert list(controls["Method"]) == ["3D direct concatenation + CIFA objective"]
    assert controls.loc[0, "compared_with"] == "concat" and 0 <= controls.loc[0, P_RAW] <= 1


def test_patch_statistics_count_fallback_patients_by_grade(run):
    _, _, _, written = run
    stats = pd.read_csv(written["patches"]).set_index("grade")
    assert stats.loc["low (0)", "fallback_patients"] == 2 and stats.loc["high (1)", "fallback_patients"] == 1
    assert stats.loc["all", "patients"] == 16 and 0 <= stats.loc["all", "fallback_vs_grade_fisher_p"] <= 1
    assert stats.loc["low (0)", "patches_per_patient_min"] == 1


def test_patch_statistics_refuse_a_patient_listed_twice():
    manifest = pd.DataFrame({"patient_id": ["A", "A"], "n_patches": [1, 2], "patch_fallback": [False, False],
                             "tumour_volume_mm3": [1.0, 1.0]})
    with pytest.raises(pd.errors.MergeError):
        patch_statistics(manifest, pd.DataFrame({"patient_id": ["A"], "grade": [0]}))


def test_cuda_request_without_a_gpu_stops_before_reading_any_data(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = {**GRADE_CFG, "training": {**TRAINING, "device": "cuda"}}
    with pytest.raises(ConfigError, match="no usable CUDA device"):
        grade_fold_job(tmp_path / "absent.npz", tmp_path / "absent.parquet", tmp_path / "absent.parquet", cfg, 0, 0, 0,
                       tmp_path / "p.parquet", tmp_path / "d.json", progress=lambda s: None)
    assert not (tmp_path / "p.parquet").exists()


def test_tables_without_the_proposed_model_have_empty_p_values_and_say_why(run, tmp_path):
    root, outs, _, _ = run
    paths = []
    for i, out in enumerate(outs):
        frame = pd.read_parquet(out / "predictions.parquet")
        frame = frame[frame["method"].isin(["local", "nonlocal"])]
        paths.append(tmp_path / f"p{i}.parquet")
        frame.to_parquet(paths[-1])
    written = _evaluate(paths, [o / "diagnostics.json" for o in outs], root, tmp_path, ["local", "nonlocal"])
    assert {k for k in written if k.endswith("_csv")} == {"table1_csv"}, "only Table 1 has rows"
    table1 = pd.read_csv(written["table1_csv"])
    assert list(table1["Method"]) == ["3D local", "3D non-local"] and table1[P_RAW].isna().all()
    assert "is not among the configured methods" in written["table1_md"].read_text()
    assert "cifa_spectra" not in written
