"""What ran, on what: the facts a reader needs before any number of the report (results/run_description.html).

The report's landing page (report/workflow.rst) says from the configuration alone whether the cohort is
synthetic and how the configuration's scale compares with the papers'; this page adds what only the run
knows: patients per class, the code's commit, a digest of the configuration and the software versions.
It holds counts only, never a patient id.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from cmdnet import __version__
from cmdnet.atomic import atomic_path
from cmdnet.config import lookup, read_config
from cmdnet.evaluation.tables import class_counts_of, html_page, html_table
from cmdnet.labels import GRADE_CLASSES, MVI_CLASSES

# (what, config path) of the settings that set a run's scale; compared with config/paper.yaml.
SCALE_SETTINGS = (
    ("Synthetic patients", ("synthetic", "n_patients")),
    ("Synthetic image signal", ("synthetic", "image_signal")),
    ("MVI crop (x, y, z voxels)", ("roi", "crop_shape_xyz")),
    ("MVI channel width (1 = 64/128/256/256)", ("mvi", "model", "width")),
    ("MVI feature size (Z vectors)", ("mvi", "model", "feature_dim")),
    ("MVI epochs", ("mvi", "training", "epochs")),
    ("MVI folds", ("folds", "mvi_k")),
    ("Grading folds", ("folds", "grade_k")),
    ("Grading repeats", ("folds", "grade_repeats")),
    ("Grading iterations", ("grade", "training", "iterations")),
    ("Grading local channels", ("grade", "training", "local_channels")),
    ("Grading non-local channels", ("grade", "training", "nonlocal_channels")),
    ("Bootstrap replicates", ("evaluation", "bootstrap_samples")),
)


def config_digest(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the configuration as canonical JSON (sorted keys)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def git_commit(repo: str | Path) -> str:
    """The checkout's commit, marked when tracked files differ from it; "unknown (...)" without git."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=20)
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    commit = head.stdout.strip()
    return f"{commit} (with uncommitted changes)" if dirty.stdout.strip() else commit


def paper_settings(repo: str | Path) -> dict[str, Any] | None:
    """The papers' configuration: config.yaml with the repository's config/paper.yaml merged over it."""
    paper = Path(repo) / "config" / "paper.yaml"
    return read_config(paper) if paper.is_file() else None


def _get(config: Mapping[str, Any], path: tuple[str, ...]):
    try:
        return lookup(config, ".".join(path))
    except KeyError:
        return None


def _show(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " x ".join(str(v) for v in value)
    return str(value)


def _counts(codes: pd.Series, names: tuple[str, ...]) -> dict[str, int]:
    return class_counts_of(pd.DataFrame({"label": codes.dropna()}), names)


def _versions() -> dict[str, str]:
    out = {"cmdnet": __version__, "python": platform.python_version()}
    for package in ("torch", "numpy", "scikit-learn", "snakemake"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def describe_run(config: Mapping[str, Any], labels: pd.DataFrame, *, commit: str,
                 paper_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's facts: cohort kind and size, patients per MVI class and grade, scale, commit, digest.

    `labels`: the workflow's labels table (`mvi` 0/1/2, `grade` 0/1; one row per patient; ids not used).
    `paper_config`: the papers' settings (config/paper.yaml), for the scale comparison.
    """
    synthetic = _get(config, ("cohort", "sheet")) is None
    return {
        "cohort": "synthetic" if synthetic else "real",
        "n_patients": int(len(labels)),
        "mvi_counts": _counts(labels["mvi"], MVI_CLASSES),
        "grade_counts": _counts(labels["grade"], GRADE_CLASSES) if "grade" in labels else {},
        "scale": [{"setting": what, "this run": _show(_get(config, path)),
                   "papers (config/paper.yaml)": _show(_get(paper_config or {}, path))}
                  for what, path in SCALE_SETTINGS if not (path[0] == "synthetic" and not synthetic)],
        "mvi_methods": list(_get(config, ("mvi", "methods")) or []),
        "commit": commit,
        "config_digest": config_digest(config),
        "versions": _versions(),
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def write_run_description(facts: Mapping[str, Any], out_path: str | Path) -> Path:
    """Write `facts` (from `describe_run`) as a standalone HTML page; return its path."""

    synthetic = facts["cohort"] == "synthetic"
    lines = [
        ("Cohort", "SYNTHETIC (cmdnet's simulated cohort: the numbers test the software and say nothing "
                   "about MRI or MVI)" if synthetic else "real (the configured cohort sheets)"),
        ("Patients", str(facts["n_patients"])),
        ("Patients per MVI class", _counts_text(facts["mvi_counts"])),
        ("Patients per grade", _counts_text(facts["grade_counts"])),
        ("MVI methods", ", ".join(facts["mvi_methods"])),
        ("Code commit", facts["commit"]),
        ("Configuration digest", f"{facts['config_digest']} (SHA-256 of the merged configuration, first 16 "
                                 "hex digits; equal digests, equal settings)"),
        ("Software", ", ".join(f"{k} {v}" for k, v in facts["versions"].items())),
        ("Written", facts["written"]),
    ]
    facts_table = html_table("About this run", None, [[k, v] for k, v in lines], [[True, False]] * len(lines),
                             css_class="text")
    scale = facts["scale"]
    scale_table = html_table("Scale of this configuration against the papers' settings",
                             ["Setting", "This run", "Papers (config/paper.yaml)"],
                             [[r["setting"], r["this run"], r["papers (config/paper.yaml)"]] for r in scale],
                             [[False] * 3 for _ in scale],
                             "The default configuration is a scaled-down copy of the papers' design (every "
                             "table row kept) that runs on a laptop CPU; the paper configuration is GPU work.")
    page = html_page("About this run", facts_table, scale_table)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out_path
