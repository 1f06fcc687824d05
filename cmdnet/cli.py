"""The `cmdnet` command line (also `python -m cmdnet`).

Each subcommand imports its module lazily so `cmdnet --help` stays fast. Input errors
(`cmdnet.errors.CmdnetError`) end with exit status 2 and one line on stderr, and no output file.
Every subcommand has a one-line description, help text (with its default) for every argument, and an example.
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


def _cmd_stats_corrected_t(args: argparse.Namespace) -> int:
    from cmdnet.evaluation.stats.corrected_t import corrected_t_from_csv

    result = corrected_t_from_csv(args.csv, score_a=args.score_a, score_b=args.score_b, fold=args.fold,
                                  repeat=args.repeat, n_train=args.n_train, n_test=args.n_test,
                                  test_fraction=args.test_fraction, alpha=args.alpha)
    print(json.dumps(result, indent=2))
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


def _cmd_predict(args: argparse.Namespace) -> int:
    from cmdnet.product.bundle import load_bundle
    from cmdnet.errors import InputError
    from cmdnet.product.predict import PhaseInput, about, predict_case, predict_cohort, rounded, write_record

    if args.out is not None and args.out.suffix.lower() not in (".json", ".csv"):
        raise InputError("output must end in .json or .csv", path=args.out)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    header = about(bundle)
    if args.cohort is not None:
        single = [f"--{n.replace('_', '-')}" for n in ("pre", "hbp", "pre_mask", "hbp_mask", "pre_series", "hbp_series")
                  if getattr(args, n) is not None]
        if single:
            raise InputError(f"--cohort (batch mode) reads the inputs from the sheet; drop {', '.join(single)}")
        if args.out is None:
            raise InputError("batch mode (--cohort) needs --out TABLE.csv or .json")
        table = predict_cohort(bundle, args.cohort, saliency_dir=args.saliency_dir)
        write_record(table, args.out, header=header, digits=args.digits)
        failed = int((table["error"] != "").sum())
        _print_notice(header)
        print(json.dumps({"output": str(args.out), "n_patients": len(table), "n_failed": failed, **header},
                         indent=2))
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
        write_record(record, args.out, header=header, digits=args.digits)
    _print_notice(header)
    print(json.dumps({**header, **rounded(record, args.digits)}, indent=2))
    return 0


def _print_notice(header: dict) -> None:
    """The notice for a person at the terminal, on stderr (stdout stays pure JSON for programs)."""
    print(f"cmdnet predict: {header['notice']} Trained on: {header['training_cohort']}.", file=sys.stderr)


def _cmd_export(args: argparse.Namespace) -> int:
    from cmdnet.product.export import export_student

    out = export_student(args.bundle, args.out)
    print(json.dumps({"output": str(out), "format": "torchscript"}))
    return 0


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples; help texts state their defaults themselves."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)


def _examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines) if len(lines) == 1 else \
        "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _subcommand(sub, name: str, summary: str, details: str = "", examples: tuple[str, ...] = (),
                **kwargs) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=f"{summary}.\n\n{details}".rstrip(),
                          epilog=_examples(*examples) if examples else None, formatter_class=_HelpFormatter,
                          **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmdnet", formatter_class=_HelpFormatter,
        description="cmdnet: from a liver-MRI cohort of hepatocellular carcinoma (DICOM series, tumour masks, a "
                    "clinical sheet) to the\nmodels and tables of two papers (CMD-Net: 3-class microvascular "
                    "invasion, M0/M1/M2; local and non-local\nfeature fusion: HCC grade), and MVI prediction for "
                    "new patients from MRI alone.\n\nThe whole workflow runs with `snakemake --cores all` in the "
                    "repository (README.md); these commands are\nits building blocks. Research use only: not a "
                    "medical device.",
        epilog=_examples("cmdnet synth demo_cohort --n-patients 20",
                         "cmdnet convert demo_cohort/dicom/SYN001/PRE SYN001_PRE.nii.gz",
                         "cmdnet predict --bundle results/models/ours --pre PRE_DIR --pre-mask pre.nii.gz "
                         "--hbp HBP_DIR --hbp-mask hbp.nii.gz",
                         "cmdnet COMMAND --help     # what a command does, its arguments and an example"))
    parser.add_argument("--version", action="version", version=f"cmdnet {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _subcommand(sub, "convert", "Convert one DICOM series to a canonical (LPS) 3D NIfTI and a JSON sidecar",
                    "Refuses, with one line naming the directory and the problem, a directory holding several "
                    "series (give --series),\nmissing slices, non-uniform spacing, 2D images, several volumes. The "
                    "sidecar holds the geometry, never a patient name.",
                    ("cmdnet convert PATIENT/PRE_DICOM_DIR PRE.nii.gz",
                     "cmdnet convert STUDY_DIR HBP.nii.gz --series 1.2.840.113619.2.55.3.1234"))
    p.add_argument("dicom_dir", type=Path, help="directory holding the series' DICOM files (its subdirectories are "
                                                "not read)")
    p.add_argument("out", type=Path, help="output .nii.gz (the sidecar is written beside it as .json)")
    p.add_argument("--series", default=None, metavar="UID",
                   help="SeriesInstanceUID to convert, needed when the directory holds several (default: the only "
                        "series)")
    p.set_defaults(func=_cmd_convert)

    p = _subcommand(sub, "validate", "Check a whole cohort before a run: every problem, one line each",
                    "Reads the config files as `snakemake --configfile` does (merged over the workflow's config.yaml), "
                    "then the\nsheets, every series' DICOM headers and every mask (docs/cohort.md). Exit status 0: "
                    "clean (warnings allowed);\n1: problems listed; 2: the check itself could not run.",
                    ("cmdnet validate --configfile my_cohort.yaml",))
    p.add_argument("--configfile", nargs="+", default=[], type=Path, metavar="FILE",
                   help="config files over config.yaml, as for snakemake (default: config.yaml alone)")
    p.add_argument("--directory", type=Path, default=Path("."), metavar="DIR",
                   help="relative paths in the config are relative to this, as snakemake's --directory (default: .)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes reading headers (default: the CPUs, at most 8)")
    p.set_defaults(func=_cmd_validate)

    p = _subcommand(sub, "series", "List the DICOM series under a folder and what `convert` would say of each",
                    "Series are named by a digest of their SeriesInstanceUID, which the cohort sheet's "
                    "<phase>_series_uid column\nand `convert --series` accept like the UID itself.",
                    ("cmdnet series /data/hcc/P017",))
    p.add_argument("dir", type=Path, help="folder to search, recursively")
    p.add_argument("--full-uids", action="store_true",
                   help="also show full SeriesInstanceUIDs, on this console only (default: digests only)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes reading headers (default: the CPUs, at most 8)")
    p.set_defaults(func=_cmd_series)

    p = _subcommand(sub, "synth", "Write a synthetic cohort: DICOM series, tumour masks, cohort and clinical sheets",
                    "The same generator the workflow uses when no cohort is configured (docs/synthetic_cohort.md): "
                    "a cohort in exactly\nthe format of a real one, to copy from or to open in a DICOM viewer. Its "
                    "headers carry fake identifiers on purpose.",
                    ("cmdnet synth demo_cohort --n-patients 20 --seed 1",))
    p.add_argument("out_dir", type=Path, help="directory to write; it must not exist or be empty")
    p.add_argument("--n-patients", type=int, default=40, metavar="N", help="number of patients (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw; same seed, same files "
                                                       "(default: 0)")
    p.set_defaults(func=_cmd_synth)

    p = _subcommand(
        sub, "predict", "MVI probabilities of new patients from a model bundle, from MRI and tumour masks only",
        "One patient: the DICOM directory and tumour mask of every phase the bundle's model uses (PRE and HBP "
        "for `ours`);\nJSON on stdout. Batch: --cohort SHEET --out TABLE, one row per patient; exit status 3 when "
        "some patients were refused\n(their row holds the reason), 2 when the bundle or sheet cannot be used. No "
        "clinical data and no label is read.\n\nOutput: prob_M0, prob_M1, prob_M2 (mean of the bundle's fold "
        "models), predicted_class (the most probable class),\np_mvi = prob_M1 + prob_M2 (any MVI), and the "
        "research-use notice with the bundle's training cohort (docs/predict.md).",
        ("cmdnet predict --bundle results/models/ours --pre P1/PRE --pre-mask P1/pre_mask.nii.gz \\",
         "    --hbp P1/HBP --hbp-mask P1/hbp_mask.nii.gz --out P1.json --saliency-dir P1_saliency",
         "cmdnet predict --bundle results/models/ours --cohort new_patients.csv --out predictions.csv"),
        usage="%(prog)s --bundle DIR --pre DIR --pre-mask FILE --hbp DIR --hbp-mask FILE [options]\n"
              "       %(prog)s --bundle DIR --cohort SHEET --out TABLE.csv|.json [options]")
    p.add_argument("--bundle", required=True, type=Path, metavar="DIR",
                   help="model bundle directory, written by the workflow as results/models/<method> (required)")
    one = p.add_argument_group("one patient (required unless --cohort: every phase the bundle uses)")
    one.add_argument("--pre", type=Path, default=None, metavar="DIR",
                     help="DICOM directory of the pre-contrast (PRE) phase")
    one.add_argument("--pre-mask", type=Path, default=None, metavar="FILE",
                     help="tumour mask (NIfTI/NRRD) drawn on the PRE series' grid")
    one.add_argument("--hbp", type=Path, default=None, metavar="DIR",
                     help="DICOM directory of the hepatobiliary (HBP) phase")
    one.add_argument("--hbp-mask", type=Path, default=None, metavar="FILE",
                     help="tumour mask (NIfTI/NRRD) drawn on the HBP series' grid")
    one.add_argument("--pre-series", default=None, metavar="UID",
                     help="SeriesInstanceUID of PRE, when its directory holds several series (default: the only one)")
    one.add_argument("--hbp-series", default=None, metavar="UID",
                     help="SeriesInstanceUID of HBP, when its directory holds several series (default: the only one)")
    one.add_argument("--patient-id", default="patient", metavar="LABEL",
                     help="label for the output and file names; letters, digits, '_', '.', '-' (default: patient)")
    batch = p.add_argument_group("batch")
    batch.add_argument("--cohort", type=Path, default=None, metavar="SHEET",
                       help="cohort sheet (CSV/XLSX, the workflow's format): patient_id and per phase <P>_dicom, "
                            "<P>_series_uid, <P>_mask; label columns are ignored")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=None, metavar="FILE",
                     help="write the result to FILE.json or FILE.csv (required in batch mode; default: stdout only)")
    out.add_argument("--saliency-dir", type=Path, default=None, metavar="DIR",
                     help="also write Grad-CAM maps per phase (NIfTI on the series' grid) and a PNG here "
                          "(default: none)")
    out.add_argument("--digits", type=int, default=3, metavar="N",
                     help="decimals of the probabilities in the output (default: 3)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the networks (default: torch's choice; 1 is fastest for small models on a "
                        "busy machine)")
    p.set_defaults(func=_cmd_predict)

    p = _subcommand(sub, "export",
                    "Export a model bundle to TorchScript: crops (B, P, Z, Y, X) to probabilities (B, 3)",
                    "The conversion and cropping are not part of the export: feed it crops made as in "
                    "bundle.json (stored inside the file).\nLoad it with torch.jit.load in Python or libtorch in C++ "
                    "(docs/predict.md).",
                    ("cmdnet export results/models/ours ours.torchscript.pt",))
    p.add_argument("bundle", type=Path, help="model bundle directory (results/models/<method>)")
    p.add_argument("out", type=Path, help="output file (.pt)")
    p.set_defaults(func=_cmd_export)

    stats = _subcommand(sub, "stats", "Statistical tests on your own predictions, outside the workflow",
                        examples=("cmdnet stats delong --csv preds.csv --truth y --score-a model_a --score-b model_b",))
    stats_sub = stats.add_subparsers(dest="stats_command", required=True, metavar="TEST")
    p = _subcommand(stats_sub, "delong", "DeLong's test for two correlated ROC curves (JSON on stdout)",
                    "Both scores must belong to the same patients (one row each). Output: both AUCs with 95% "
                    "DeLong CIs, their difference\nwith its CI, z and the two-sided p-value.",
                    ("cmdnet stats delong --csv preds.csv --truth mvi --score-a ours --score-b concat --positive 1",))
    p.add_argument("--csv", required=True, type=Path, metavar="FILE",
                   help="CSV with one row per patient: the true class and both scores (required)")
    p.add_argument("--truth", required=True, metavar="COLUMN", help="column with the true class (required)")
    p.add_argument("--score-a", required=True, metavar="COLUMN",
                   help="column with method A's score, higher = positive (required)")
    p.add_argument("--score-b", required=True, metavar="COLUMN",
                   help="column with method B's score, higher = positive (required)")
    p.add_argument("--positive", default=None, metavar="VALUE",
                   help="value of the truth column that is the positive class (default: 1, or the larger of two "
                        "values)")
    p.set_defaults(func=_cmd_stats_delong)

    p = _subcommand(stats_sub, "corrected-t",
                    "Corrected resampled t-test of two methods over cross-validation folds (JSON on stdout)",
                    "Nadeau & Bengio (2003): the paired t-test over folds with its variance inflated by the overlap of "
                    "the training\nsets (1/J + n_test/n_train), valid for repeated k-fold CV (Bouckaert & Frank "
                    "2004). One row per test fold.",
                    ("cmdnet stats corrected-t --csv folds.csv --score-a ours --score-b concat --repeat repeat "
                     "--test-fraction 0.2",))
    p.add_argument("--csv", required=True, type=Path, metavar="FILE",
                   help="CSV with one row per test fold: both methods' metric (required)")
    p.add_argument("--score-a", required=True, metavar="COLUMN", help="column with method A's metric (required)")
    p.add_argument("--score-b", required=True, metavar="COLUMN", help="column with method B's metric (required)")
    p.add_argument("--fold", default="fold", metavar="COLUMN", help="column with the fold index (default: fold)")
    p.add_argument("--repeat", default=None, metavar="COLUMN",
                   help="column with the repeat index, for repeated CV (default: none, or `repeat` if present)")
    p.add_argument("--n-train", default="n_train", metavar="COLUMN",
                   help="column with each fold's training-set size (default: n_train)")
    p.add_argument("--n-test", default="n_test", metavar="COLUMN",
                   help="column with each fold's test-set size (default: n_test)")
    p.add_argument("--test-fraction", type=float, default=None, metavar="F",
                   help="n_test / (n_train + n_test) of every fold, instead of the two size columns (default: none)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level of the CI (default: 0.05)")
    p.set_defaults(func=_cmd_stats_corrected_t)
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
