"""The `cmdnet` command line (also `python -m cmdnet`).

Each subcommand imports its module lazily so `cmdnet --help` stays fast. Input errors
(`cmdnet.errors.CmdnetError`) end with exit status 2 and one line on stderr, and no output file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cmdnet import __version__
from cmdnet.errors import CmdnetError


def _cmd_convert(args: argparse.Namespace) -> int:
    from cmdnet.data.dicom import convert_series

    sidecar = convert_series(args.dicom_dir, args.out, series_uid=args.series)
    print(json.dumps({"output": str(args.out), "size": sidecar.get("size"),
                      "spacing": sidecar.get("spacing")}))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from cmdnet.data.synth import SynthParams, write_cohort

    params = SynthParams(n_patients=args.n_patients, seed=args.seed)
    write_cohort(Path(args.out_dir), params)
    print(f"synthetic cohort of {args.n_patients} patients written to {args.out_dir}")
    return 0


def _cmd_stats_delong(args: argparse.Namespace) -> int:
    from cmdnet.evaluation.stats.delong import delong_from_csv

    result = delong_from_csv(args.csv, truth=args.truth, score_a=args.score_a, score_b=args.score_b,
                             positive=args.positive)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from cmdnet.product.bundle import load_bundle
    from cmdnet.errors import InputError
    from cmdnet.product.predict import PhaseInput, predict_case, predict_cohort, write_record

    if args.out is not None and args.out.suffix.lower() not in (".json", ".csv"):
        raise InputError("output must end in .json or .csv", path=args.out)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    if args.cohort is not None:
        single = [f"--{n.replace('_', '-')}" for n in ("pre", "hbp", "pre_mask", "hbp_mask", "pre_series", "hbp_series")
                  if getattr(args, n) is not None]
        if single:
            raise InputError(f"--cohort (batch mode) reads the inputs from the sheet; drop {', '.join(single)}")
        if args.out is None:
            raise InputError("batch mode (--cohort) needs --out TABLE.csv or .json")
        table = predict_cohort(bundle, args.cohort, saliency_dir=args.saliency_dir)
        write_record(table, args.out)
        failed = int((table["error"] != "").sum())
        print(json.dumps({"output": str(args.out), "n_patients": len(table), "n_failed": failed}))
        return 3 if failed else 0
    given = {"PRE": (args.pre, args.pre_mask, args.pre_series), "HBP": (args.hbp, args.hbp_mask, args.hbp_series)}
    inputs = {}
    for phase in bundle.phases:
        if phase not in given:
            raise InputError(f"the bundle's model needs phase {phase}, which the single-patient options do not "
                             "cover (--pre/--hbp): use batch mode, --cohort SHEET")
        dicom_dir, mask, uid = given[phase]
        if dicom_dir is None or mask is None:
            raise InputError(f"the bundle's model needs phase {phase}: give --{phase.lower()} DICOM_DIR and "
                             f"--{phase.lower()}-mask FILE (or --cohort SHEET)")
        inputs[phase] = PhaseInput(dicom_dir, mask, uid)
    record = predict_case(bundle, inputs, patient=args.patient_id, saliency_dir=args.saliency_dir)
    if args.out is not None:
        write_record(record, args.out)
    print(json.dumps(record, indent=2))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from cmdnet.product.export import export_student

    out = export_student(args.bundle, args.out)
    print(json.dumps({"output": str(out), "format": "torchscript"}))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from cmdnet.config import read_config
    from cmdnet.data.validate import CheckSummary, validate_cohort

    config = read_config(*args.configfile)
    summary = CheckSummary()
    for problem in validate_cohort(config, workers=args.workers, base_dir=args.directory, summary=summary):
        print(problem)
    print(summary.line())
    return 1 if summary.n_problems else 0


def _cmd_series(args: argparse.Namespace) -> int:
    from cmdnet.data.dicom.survey import format_survey, survey
    from cmdnet.data.validate import default_workers

    reports = survey(args.dir, workers=args.workers or default_workers())
    print("\n".join(format_survey(reports, args.dir, full_uids=args.full_uids)))
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

    p = sub.add_parser("validate", help="check a whole cohort before a run: every problem, one line each",
                       description="Reads the config files as `snakemake --configfile` does (over the workflow's "
                                   "config.yaml), then the sheets, every series' headers and every mask. Exit "
                                   "status 0: clean (warnings allowed); 1: problems listed; 2: cannot check.")
    p.add_argument("--configfile", nargs="+", default=[], type=Path, metavar="FILE")
    p.add_argument("--directory", type=Path, default=Path("."),
                   help="relative paths in the config are relative to this (snakemake's --directory)")
    p.add_argument("--workers", type=int, default=None, help="processes reading headers (default: CPUs, max 8)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("series", help="list the DICOM series under a folder and what `convert` says of each",
                       description="Series are named by a digest of their SeriesInstanceUID, which the cohort "
                                   "sheet's <phase>_series_uid column and --series accept like the UID itself.")
    p.add_argument("dir", type=Path)
    p.add_argument("--full-uids", action="store_true",
                   help="show full SeriesInstanceUIDs (on this console only; cmdnet never writes them to a file)")
    p.add_argument("--workers", type=int, default=None, help="processes reading headers (default: CPUs, max 8)")
    p.set_defaults(func=_cmd_series)

    p = sub.add_parser("synth", help="write a synthetic cohort (DICOM, masks, cohort and clinical sheets)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n-patients", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("predict", help="MVI probabilities of new patients from a model bundle (MRI + masks only)",
                       description="One patient (--pre/--hbp DICOM dirs and masks; JSON on stdout) or a batch "
                                   "(--cohort SHEET --out TABLE; exit status 3 when some patients were refused).")
    p.add_argument("--bundle", required=True, type=Path, help="model bundle directory (results/models/<method>)")
    p.add_argument("--pre", type=Path, default=None, help="DICOM directory of the pre-contrast phase")
    p.add_argument("--hbp", type=Path, default=None, help="DICOM directory of the hepatobiliary phase")
    p.add_argument("--pre-mask", type=Path, default=None, help="tumour mask (NIfTI/NRRD) on the PRE series' grid")
    p.add_argument("--hbp-mask", type=Path, default=None, help="tumour mask (NIfTI/NRRD) on the HBP series' grid")
    p.add_argument("--pre-series", default=None, help="SeriesInstanceUID, when the PRE directory holds several")
    p.add_argument("--hbp-series", default=None, help="SeriesInstanceUID, when the HBP directory holds several")
    p.add_argument("--patient-id", default="patient", help="label used in the output and file names")
    p.add_argument("--cohort", type=Path, default=None, help="batch mode: cohort sheet (labels are ignored)")
    p.add_argument("--out", type=Path, default=None, help="also write the result to FILE.json or FILE.csv")
    p.add_argument("--saliency-dir", type=Path, default=None, help="write Grad-CAM NIfTI maps and a PNG here")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the networks (default: torch's; 1 is fastest for small models on a busy "
                        "machine)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="export a model bundle to TorchScript (crops -> probabilities)")
    p.add_argument("bundle", type=Path)
    p.add_argument("out", type=Path, help="output file (.pt)")
    p.set_defaults(func=_cmd_export)

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
