"""Seconds per patient of the data stages on the default synthetic cohort, in one process (no job overhead).

    python benchmarks/bench_stages.py [--n-patients 80] [--keep DIR]

Writes a synthetic cohort of the default size (config.yaml) to a temporary directory, then times the stages
the workflow runs per patient (DICOM -> NIfTI for each phase, tumour crops and patches) and per cohort
(labels, clinical cleaning, folds, dataset assembly). The workflow adds roughly one second of process start
and imports per job on top of these figures: compare with `benchmarks/aggregate_benchmarks.py` after a run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cmdnet import pipeline  # noqa: E402
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
    for pid in ids:
        images = [work / "nifti" / pid / f"{ph}.nii.gz" for ph in phases]
        sidecars = timed("dicom_to_nifti", pipeline.convert_patient, sheet, cohort_cfg, pid, phases, images)
        n_slices += sum(s["size"][2] for s in sidecars.values())
        rois = [work / "roi" / pid / f"{ph}.npz" for ph in phases]
        timed("extract_roi", pipeline.extract_patient_roi, sheet, cohort_cfg, roi_cfg, pid, phases, images, rois,
              patch_phase=config["grade"]["phase"], seed=0)
    labels = work / "labels.parquet"
    timed("cohort_labels", pipeline.write_labels, sheet, cohort_cfg, phases, labels)
    timed("clean_clinical", pipeline.clean_clinical_stage, cohort / "clinical.csv", cohort / "clinical_dictionary.csv",
          labels, cohort_cfg, work / "clinical.parquet", work / "missingness.csv")
    timed("make_folds", pipeline.folds_stage, labels, config["folds"], 0, work / "mvi.parquet", work / "grade.parquet")
    roi_files = [str(work / "roi" / pid / f"{ph}.npz") for pid in ids for ph in config["mvi"]["phases"]]
    timed("assemble datasets", pipeline.assemble, roi_files, ids, config["mvi"]["phases"], work / "mvi.npz", None)

    print(f"{args.n_patients} patients, {len(phases)} phases, {n_slices} slices converted")
    print(f"{'stage':22} {'total s':>9} {'s/patient':>10}")
    for name, seconds in timings.items():
        print(f"{name:22} {seconds:9.2f} {seconds / args.n_patients:10.3f}")
    print(f"DICOM conversion: {1000 * timings['dicom_to_nifti'] / n_slices:.1f} ms per slice")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
