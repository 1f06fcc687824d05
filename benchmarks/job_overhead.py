"""Seconds a workflow job spends not doing its work: interpreter start and imports, per job family.

    python benchmarks/job_overhead.py [--repeats 7] [--results RESULTS_DIR]

1. Imports, measured in fresh processes (median of `--repeats`): what each job family imports before its stage
   does anything (Snakemake's script preamble, then the stage module and what the stage imports), against the
   libraries an earlier layout imported in every training job (scikit-learn and SciPy, through the metrics and the
   folds). Printed in seconds and as a ratio to the current imports, so the numbers mean something on a noisy
   machine.
2. With `--results` (a finished run), each training job's non-training seconds: the job's wall time from its
   `benchmark:` file minus the seconds of its epochs in `history.csv`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

FAMILIES = {
    "python alone": "pass",
    "Snakemake script preamble": "import snakemake.script",
    "training job (train_method, train_teacher)":
        "import snakemake.script, cmdnet.stages, torch, pandas; import cmdnet.mvi.training.fold",
    "training job, earlier imports (+ scikit-learn, SciPy)":
        "import snakemake.script, cmdnet.stages, torch, pandas; import cmdnet.mvi.training.fold; "
        "import sklearn.metrics, sklearn.model_selection, scipy.stats",
    "grading job (train_grade_fold)": "import snakemake.script, cmdnet.stages, torch, pandas; import cmdnet.grade",
    "data job (dicom_to_nifti, extract_roi)":
        "import snakemake.script, cmdnet.stages; import cmdnet.data.dicom, cmdnet.data.roi",
    "evaluation job (evaluate_mvi)": "import snakemake.script, cmdnet.stages; import cmdnet.evaluation.mvi",
}


def import_seconds(code: str, repeats: int) -> float:
    """Wall seconds of a fresh interpreter that runs `code` (start-up included, as a job pays it)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_overhead(results: Path) -> pd.DataFrame:
    """Per training job: wall seconds (benchmark file), seconds of its epochs (history.csv), the difference."""
    rows = []
    for rule, kind in (("train_method", "methods"), ("train_teacher", "teachers")):
        for tsv in sorted((results / "benchmarks" / rule).glob("*.tsv")):
            name, repeat, fold = tsv.stem.rsplit("_repeat", 1)[0], *tsv.stem.rsplit("_repeat", 1)[1].split("_fold")
            history = results / "mvi" / kind / name / f"repeat{repeat}" / f"fold{fold}" / "history.csv"
            if not history.is_file():
                continue
            wall = pd.read_csv(tsv, sep="\t")["s"].mean()
            epochs = pd.read_csv(history)["seconds"].sum()
            rows.append({"rule": rule, "job": tsv.stem, "wall_s": wall, "epochs_s": epochs, "other_s": wall - epochs})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--results", type=Path, default=None, help="a finished run's results directory")
    args = parser.parse_args()
    seconds = {name: import_seconds(code, args.repeats) for name, code in FAMILIES.items()}
    now = seconds["training job (train_method, train_teacher)"]
    print(f"imports before the work starts (median of {args.repeats} fresh processes):")
    for name, value in seconds.items():
        print(f"  {name:55} {value:6.2f} s   ({value / now:4.2f} x the training job's)")
    if args.results is not None:
        table = training_overhead(args.results)
        if table.empty:
            raise SystemExit(f"no training benchmarks with histories under {args.results}")
        print(f"\ntraining jobs of {args.results}: {len(table)} jobs")
        print(table.groupby("rule")[["wall_s", "epochs_s", "other_s"]].median().round(2).to_string())
        print(f"non-training seconds per job: median {table['other_s'].median():.2f} s, "
              f"share of job time {table['other_s'].sum() / table['wall_s'].sum():.0%}")


if __name__ == "__main__":
    main()
