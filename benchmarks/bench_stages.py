"""Seconds per patient of the data stages on the default synthetic cohort, in one process (no job overhead).

    python benchmarks/bench_stages.py [--n-patients 80] [--keep DIR]

Writes a synthetic cohort of the default size (config.yaml) to a temporary directory, then times the stages
the workflow runs per patient (DICOM -> NIfTI for each phase, tumour crops and patches) and per cohort
(labels, clinical cleaning, folds, dataset assembly). The workflow adds roughly one second of process start
and imports per job on top of these figures: compare with `benchmarks/aggregate_benchmarks.py` after a run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cmdnet import stages  # noqa: E402
from cmdnet.data.cohort import cohort_sources  # noqa: E402
from cmdnet.data.synth import SynthParams, patient_ids, write_cohort  # noqa: E402


def main() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-patients", type=int, default=config["synthetic"]["n_patients"])
    parser.add_argument("--keep", type=Path, default=None, help="keep the outputs in this directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cmdnet-bench-")) if args.keep is None else args.keep
    cohort_cfg, roi_cfg = config["cohort"], config["roi"]
    phases = list(dict.fromkeys(config["mvi"]["phases"] + [config["grade"]["phase"]]))
    timings: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        tic = time.perf_counter()
        out = fn(*a, **kw)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - tic
        return out

    cohort = work / "cohort"
    timed("synthetic cohort", write_cohort, cohort, SynthParams(n_patients=args.n_patients, seed=0))
    sheet = cohort / "cohort.csv"
    ids = patient_ids(args.n_patients)
    n_slices = 0
    sources = cohort_sources(sheet, cohort_cfg, phases)
    for pid in ids:
        images = [str(work / "nifti" / pid / f"{ph}.nii.gz") for ph in phases]
        sidecars = [i.replace(".nii.gz", ".json") for i in images]
        series = sources[pid].series(phases)
        timed("dicom_to_nifti", stages.dicom_to_nifti, patient=pid, series=series, phases=phases,
              out_images=images, out_sidecars=sidecars)
        n_slices += sum(json.loads(Path(s).read_text())["size"][2] for s in sidecars)
        rois = [str(work / "roi" / pid / f"{ph}.npz") for ph in phases]
        timed("extract_roi", stages.extract_roi, patient=pid, series=series, masks=cohort_cfg, roi=roi_cfg,
              phases=phases, patch_phase=config["grade"]["phase"], seed=0, images=images, out_rois=rois)
    labels = work / "labels.parquet"
    timed("cohort_labels", stages.cohort_labels, sheet=sheet, cohort=cohort_cfg, phases=phases, out_labels=labels)
    timed("clean_clinical", stages.clean_clinical, labels=labels, clinical_sheet=cohort / "clinical.csv",
          dictionary=cohort / "clinical_dictionary.csv", cohort=cohort_cfg, out_table=work / "clinical.parquet",
          out_missingness=work / "missingness.csv")
    timed("make_folds", stages.make_folds, labels=labels, folds=config["folds"], seed=0,
          out_mvi=work / "mvi.parquet", out_grade=work / "grade.parquet")
    roi_files = [str(work / "roi" / pid / f"{ph}.npz") for pid in ids for ph in config["mvi"]["phases"]]
    timed("assemble datasets", stages.assemble_dataset, rois=roi_files, patients=ids,
          phases=config["mvi"]["phases"], patches_of=None, out_dataset=work / "mvi.npz",
          out_manifest=work / "mvi_manifest.parquet")

    print(f"{args.n_patients} patients, {len(phases)} phases, {n_slices} slices converted")
    print(f"{'stage':22} {'total s':>9} {'s/patient':>10}")
    for name, seconds in timings.items():
        print(f"{name:22} {seconds:9.2f} {seconds / args.n_patients:10.3f}")
    print(f"DICOM conversion: {1000 * timings['dicom_to_nifti'] / n_slices:.1f} ms per slice")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
