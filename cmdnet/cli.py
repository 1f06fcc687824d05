"""The `cmdnet` command line (also `python -m cmdnet`).

Each subcommand imports its module lazily so `cmdnet --help` stays fast. Input errors
(`cmdnet.errors.CmdnetError`) end with exit status 2 and one line on stderr, and no output file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import CmdnetError


def _cmd_convert(args: argparse.Namespace) -> int:
    from .dicom import convert_series

    sidecar = convert_series(args.dicom_dir, args.out, series_uid=args.series)
    print(json.dumps({"output": str(args.out), "size": sidecar.get("size"),
                      "spacing": sidecar.get("spacing")}))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synth import SynthParams, write_cohort

    params = SynthParams(n_patients=args.n_patients, seed=args.seed)
    write_cohort(Path(args.out_dir), params)
    print(f"synthetic cohort of {args.n_patients} patients written to {args.out_dir}")
    return 0


def _cmd_stats_delong(args: argparse.Namespace) -> int:
    from .stats.delong import delong_from_csv

    result = delong_from_csv(args.csv, truth=args.truth, score_a=args.score_a, score_b=args.score_b,
                             positive=args.positive)
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmdnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cmdnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert one DICOM series to a canonical (LPS) 3D NIfTI + JSON sidecar")
    p.add_argument("dicom_dir", type=Path)
    p.add_argument("out", type=Path, help="output .nii.gz (the sidecar is written beside it as .json)")
    p.add_argument("--series", default=None, help="SeriesInstanceUID, needed when the directory holds several")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("synth", help="write a synthetic cohort (DICOM, masks, cohort and clinical sheets)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n-patients", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth)

    stats = sub.add_parser("stats", help="statistical tests outside the workflow")
    stats_sub = stats.add_subparsers(dest="stats_command", required=True)
    p = stats_sub.add_parser("delong", help="DeLong's test for two correlated ROC curves (JSON on stdout)")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--truth", required=True, help="column with the true class")
    p.add_argument("--score-a", required=True, help="column with method A's score (higher = positive)")
    p.add_argument("--score-b", required=True, help="column with method B's score (higher = positive)")
    p.add_argument("--positive", default=None,
                   help="value of the truth column that is the positive class (default: 1 / the larger of two)")
    p.set_defaults(func=_cmd_stats_delong)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CmdnetError as err:
        print(f"cmdnet: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
