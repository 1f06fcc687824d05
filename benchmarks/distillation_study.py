"""The distillation validation study: does CMD-Net's distillation carry privileged clinical information into an
MRI-only student on data where it should?

    python benchmarks/distillation_study.py                       # 5 seeds of config/study_distillation.yaml
    python benchmarks/distillation_study.py --seeds 0 1 --cores 4
    python benchmarks/distillation_study.py --aggregate-only      # the table from runs already made

Each seed is one ordinary run of the workflow (`snakemake --directory <out>/seed<s> --configfile
config/study_distillation.yaml <seed file>`) up to `results/mvi/summary.csv`, on its own synthetic cohort and its
own partitions: the seed file sets both `seed` (folds, initialisation, training) and `synthetic.seed` (the
cohort). A run that was interrupted resumes where it stopped. The script then reads every seed's summary and
writes `<out>/study.csv` (pooled out-of-fold macro AUC per method and seed) and `<out>/study.md`: mean ± SD
across seeds and the paired differences named by `--compare` with a 95% t-interval across seeds (the seeds are
independent replications: cohort, partitions and weights all change). docs/validation.md reports it.

Extra arguments after `--` go to Snakemake, e.g. `-- --profile profiles/slurm` on a cluster or
`-- --resources gpu=2` on a GPU workstation.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COMPARE = ("ours-s_pre_hbp", "ours-kd_ours", "teacher-clinical_lr")
AUC = "pooled_auc_macro_ovo"


def seed_command(seed: int, out: Path, config: Path, cores: int, extra: list[str]) -> list[str]:
    """The Snakemake command of one seed's run (writes the seed's config file into its directory)."""
    workdir = out / f"seed{seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    seed_file = workdir / "seed.yaml"
    seed_file.write_text(yaml.safe_dump({"seed": seed, "synthetic": {"seed": seed}}))
    # The target first: options such as --quiet and --configfile take every word that follows them.
    return [sys.executable, "-m", "snakemake", "results/mvi/summary.csv", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--cores", str(cores), "--rerun-incomplete", *extra,
            "--configfile", str(config), str(seed_file)]


def run_seed(seed: int, out: Path, config: Path, cores: int, extra: list[str]) -> float:
    """One workflow run of the study at `seed`; returns its wall seconds."""
    command = seed_command(seed, out, config, cores, ["--quiet", "rules", *extra])
    print(f"seed {seed}: {' '.join(command[2:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    print(f"seed {seed}: {seconds / 60:.1f} min", flush=True)
    return seconds


def collect(out: Path, seeds: list[int]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Pooled out-of-fold macro AUC of every method and teacher (one row per seed, one column per name), and
    the names as the tables print them."""
    rows, display = {}, {}
    for seed in seeds:
        summary = pd.read_csv(out / f"seed{seed}" / "results" / "mvi" / "summary.csv").set_index("name")
        rows[seed] = summary[AUC]
        display.update(summary.get("display", {}))
    frame = pd.DataFrame(rows).T
    frame.index.name = "seed"
    return frame, display


def t_interval(values: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and `level` t-interval of independent replicate values."""
    from scipy.stats import t

    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = t.ppf(0.5 + level / 2, n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def study_markdown(aucs: pd.DataFrame, display: dict[str, str], compare: list[str], wall: dict[int, float],
                   config: Path) -> str:
    def display_name(name: str) -> str:
        return display.get(name, name)

    lines = [(f"Pooled out-of-fold macro one-vs-one AUC, {len(aucs)} seeds ({', '.join(map(str, aucs.index))}; "
             "each seed: its own synthetic cohort, partitions and weights)."), "",
             "| method | mean ± SD across seeds | " + " | ".join(f"seed {s}" for s in aucs.index) + " |",
             "|---|---|" + "---|" * len(aucs.index)]
    for name in aucs.columns:
        col = aucs[name]
        lines.append(f"| {display_name(name)} | {col.mean():.3f} ± {col.std(ddof=1):.3f} | "
                     + " | ".join(f"{v:.3f}" for v in col) + " |")
    lines += ["", "| paired difference | mean | 95% CI (t, across seeds) | seeds where positive |", "|---|---|---|---|"]
    for pair in compare:
        a, b = pair.split("-", 1)
        if a not in aucs or b not in aucs:
            continue
        diff = aucs[a] - aucs[b]
        mean, lo, hi = t_interval(diff)
        lines.append(f"| {display_name(a)} − {display_name(b)} | {mean:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
                     f"{int((diff > 0).sum())} of {len(diff)} |")
    if wall:
        lines += ["", (f"Wall time: {sum(wall.values()) / 60:.0f} min for {len(wall)} seeds "
                      f"({min(wall.values()) / 60:.1f}-{max(wall.values()) / 60:.1f} min each) on "
                      f"this machine ({_machine()}), config `{config.relative_to(REPO)}`.")]
    return "\n".join(lines) + "\n"


def _machine() -> str:
    import os

    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, {gpu}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "study_distillation.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "study_distillation",
                        help="one workflow directory per seed, and the study's table (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--compare", nargs="+", default=list(DEFAULT_COMPARE), metavar="A-B",
                        help="paired differences to report (method or teacher names; default: %(default)s)")
    parser.add_argument("--aggregate-only", action="store_true", help="only read the seeds' summaries")
    args = parser.parse_args(argv)
    config, out = args.config.resolve(), args.out.resolve()

    wall = {}
    if not args.aggregate_only:
        for seed in args.seeds:
            wall[seed] = run_seed(seed, out, config, args.cores, extra)
    aucs, display = collect(out, args.seeds)
    aucs.to_csv(out / "study.csv")
    text = study_markdown(aucs, display, args.compare, wall, config)
    (out / "study.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
