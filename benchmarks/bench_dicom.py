"""Time stage 1 (DICOM series -> LPS float32 .nii.gz + sidecar) per slice on the real 3D series.

    python benchmarks/bench_dicom.py [--repeats 5] [--case siemens_decubitus_HFDL_t1_sag]

Prints the median of `--repeats` runs for: cmdnet's `convert_series` (pydicom header scan + one SimpleITK
read of the sorted file list + DICOMOrient + write; float32 .nii.gz, so gzip dominates), `read_series`
alone (no write), SimpleITK alone with its own GDCM series scan (reference, no validation, no write), and
dcm2niix (`-z y`, gzip output, process start included) when it is on PATH. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import SimpleITK as sitk

from cmdnet.data.dicom import convert_series, read_series
from timing import median_seconds

SHARED_DICOM = Path(__file__).resolve().parents[2] / "shared" / "dicom"


def sitk_with_gdcm_scan(dicom_dir: Path) -> sitk.Image:
    """SimpleITK's usual recipe: GDCM finds and sorts the series, then reads it."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(dicom_dir)))
    return reader.Execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="siemens_decubitus_HFDL_t1_sag")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    dicom_dir = SHARED_DICOM / args.case / "dicom"
    if not dicom_dir.is_dir():
        raise SystemExit(f"{dicom_dir} is absent (needs ../shared/dicom beside the clone)")
    n_slices = len([p for p in dicom_dir.iterdir() if p.is_file()])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours = median_seconds(lambda: convert_series(dicom_dir, tmp / "ours.nii.gz"), args.repeats)
        read = median_seconds(lambda: read_series(dicom_dir), args.repeats)
        gdcm = median_seconds(lambda: sitk_with_gdcm_scan(dicom_dir), args.repeats)
        print(f"case {args.case}: {n_slices} files, median of {args.repeats} runs")
        print(f"  cmdnet convert_series (read+validate+write .nii.gz): {ours * 1e3:8.1f} ms "
              f"= {ours / n_slices * 1e3:6.2f} ms/slice")
        print(f"  cmdnet read_series (read+validate+orient, no write):  {read * 1e3:8.1f} ms "
              f"= {read / n_slices * 1e3:6.2f} ms/slice")
        print(f"  SimpleITK GDCM scan + read (no write, reference):     {gdcm * 1e3:8.1f} ms "
              f"= {gdcm / n_slices * 1e3:6.2f} ms/slice")

        dcm2niix = shutil.which("dcm2niix")
        if dcm2niix is None:
            print("  dcm2niix not on PATH (Debian package `dcm2niix`): no comparison")
            return
        out = tmp / "dcm2niix"
        out.mkdir()

        def run_dcm2niix() -> None:
            for old in out.iterdir():
                old.unlink()
            subprocess.run([dcm2niix, "-z", "y", "-b", "y", "-f", "vol", "-o", str(out), str(dicom_dir)],
                           check=True, capture_output=True)

        theirs = median_seconds(run_dcm2niix, args.repeats)
        print(f"  dcm2niix -z y (process included):                     {theirs * 1e3:8.1f} ms "
              f"= {theirs / n_slices * 1e3:6.2f} ms/slice")
        print(f"  ratio cmdnet / dcm2niix: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
