"""Can a simple model read tumour size from the image crop? One answer per crop mode (docs/cohort.md, "Crops").

    python benchmarks/crop_size_readout.py [--n-patients 80] [--cohort DIR] [--phase HBP]

Writes (or reuses) a synthetic cohort, converts one phase per patient, crops it under each ROI setting and
fits ridge regressions to log tumour volume from three readouts of the crop, with 5-fold cross-validated
predictions (the ridge penalty chosen inside each training fold):

* voxels: every voxel of the z-scored image crop (no mask);
* histogram: the fractions of crop voxels below z = -2, -1.5, ..., 1 (what one 1x1x1 convolution, a ReLU-like
  threshold and global average pooling compute: a CNN's easiest feature);
* mask: log of the tumour fraction of the crop (what a model given the mask could read).

Prints per setting the cross-validated R^2 and Spearman correlation. Seeds fixed: same input, same numbers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cmdnet.data.dicom import convert_series  # noqa: E402
from cmdnet.errors import CohortWarning  # noqa: E402
from cmdnet.data.roi import RoiParams, extract_roi  # noqa: E402
from cmdnet.data.synth import SynthParams, write_cohort  # noqa: E402

SETTINGS = {
    "fit_box (24x24x12, margin 10 mm)": dict(crop_mode="fit_box"),
    "fit_box + antialias": dict(crop_mode="fit_box", antialias=True),
    "fixed_mm 96x96x96 mm (24x24x12)": dict(crop_mode="fixed_mm", crop_size_mm=[96, 96, 96]),
    "fixed_mm 96x96x96 mm + antialias": dict(crop_mode="fixed_mm", crop_size_mm=[96, 96, 96], antialias=True),
}


def cv_scores(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15)))
    pred = cross_val_predict(model, x, y, cv=KFold(5, shuffle=True, random_state=0))
    return float(r2_score(y, pred)), float(spearmanr(y, pred).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-patients", type=int, default=80)
    parser.add_argument("--cohort", type=Path, default=None, help="reuse (or write) the cohort here")
    parser.add_argument("--phase", default="HBP")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crop_readout_"))
    cohort = args.cohort or work / "cohort"
    if not (cohort / "cohort.csv").is_file():
        write_cohort(cohort, SynthParams(n_patients=args.n_patients, seed=0, image_signal=1.5))
    ids = sorted(p.name for p in (cohort / "dicom").iterdir())[: args.n_patients]
    volumes, extents, cut = [], [], []
    crops, histograms, fractions = ({k: [] for k in SETTINGS} for _ in range(3))
    for pid in ids:
        image = work / "nifti" / f"{pid}.nii.gz"
        convert_series(cohort / "dicom" / pid / args.phase, image)
        mask = cohort / "masks" / f"{pid}_{args.phase}.nii.gz"
        for name, extra in SETTINGS.items():
            out = work / "roi" / f"{pid}.npz"
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always", CohortWarning)
                row = extract_roi(image, mask, out, RoiParams(make_patches=False, **extra), patient=pid,
                                  phase=args.phase)
            with np.load(out) as z:
                crops[name].append(z["crop"].ravel())
                histograms[name].append([float((z["crop"] < t).mean()) for t in np.arange(-2.0, 1.01, 0.5)])
                fractions[name].append(float(np.log(z["crop_mask"].mean())))
            if name.startswith("fixed") and "antialias" not in name:
                cut.append(bool(row["crop_cuts_tumour"]))
        volumes.append(row["tumour_volume_mm3"])
        extents.append(np.subtract(row["bbox_max_mm"], row["bbox_min_mm"]))
    y = np.log(np.asarray(volumes))
    extents = np.asarray(extents)
    print(f"{len(ids)} patients, phase {args.phase}; tumour volume {np.exp(y).min() / 1000:.1f}-"
          f"{np.exp(y).max() / 1000:.1f} cm3; tumour box extent (mm) max x {extents[:, 0].max():.0f}, "
          f"y {extents[:, 1].max():.0f}, z {extents[:, 2].max():.0f}; fixed crops cutting a tumour: {sum(cut)}")
    print(f"{'setting':<36} {'voxels':>17} {'histogram':>17} {'mask':>17}")
    print(f"{'':<36}" + f" {'CV R2':>7} {'rho':>9}" * 3)
    for name in SETTINGS:
        scores = [cv_scores(np.asarray(x[name]).reshape(len(ids), -1), y) for x in (crops, histograms, fractions)]
        print(f"{name:<36}" + "".join(f" {r2:>7.2f} {rho:>9.2f}" for r2, rho in scores))


if __name__ == "__main__":
    main()
