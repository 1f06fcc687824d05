"""Where the time of a workflow run went: aggregates every rule's `benchmark:` file into a table and a chart.

    python benchmarks/aggregate_benchmarks.py [RESULTS_DIR]      # default: results

Writes RESULTS_DIR/benchmarks/summary.csv and summary.png and prints the table. Each rule's jobs are summed
(CPU-seconds of work), so the total exceeds the wall time of a parallel run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def collect(bench_dir: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent != bench_dir else tsv.stem
        frame = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "seconds": frame["s"].mean(), "max_rss_mb": pd.to_numeric(
            frame["max_rss"], errors="coerce").max()})
    if not rows:
        raise SystemExit(f"no benchmark files under {bench_dir}: run the workflow first")
    jobs = pd.DataFrame(rows)
    summary = jobs.groupby("rule").agg(jobs=("seconds", "size"), total_s=("seconds", "sum"),
                                       mean_s=("seconds", "mean"), max_s=("seconds", "max"),
                                       peak_rss_mb=("max_rss_mb", "max"))
    summary["share"] = summary["total_s"] / summary["total_s"].sum()
    return summary.sort_values("total_s", ascending=False)


def main(results: Path) -> None:
    bench_dir = results / "benchmarks"
    summary = collect(bench_dir)
    summary.to_csv(bench_dir / "summary.csv")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(summary) + 1.2))
    ax.barh(summary.index[::-1], summary["total_s"][::-1])
    ax.set_xlabel("job seconds, summed over the rule's jobs")
    ax.set_title("Where the time went")
    fig.tight_layout()
    fig.savefig(bench_dir / "summary.png", dpi=120)
    pd.set_option("display.width", 120)
    print(summary.round({"total_s": 1, "mean_s": 2, "max_s": 2, "peak_rss_mb": 0, "share": 3}).to_string())
    print(f"\ntotal job seconds {summary['total_s'].sum():.0f}; table and chart in {bench_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results"))
