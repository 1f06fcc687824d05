"""Datasets: the per-patient ROI archives of one experiment stacked into one array file, and its one reader.

`<experiment>.npz` holds `patient_id` (N,) text, `images` float32 `(N, P, Z, Y, X)` and `masks` uint8 of the same
shape (phases in the order given), and for the grading experiment `patches` float32 `(M, 16, 16, 16)`,
`patch_patient` (M,) and `patch_centres_mm` (M, 3). Arrays only (loadable with `allow_pickle=False`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cmdnet.atomic import atomic_path
from cmdnet.data.sheets import write_parquet
from cmdnet.errors import CohortError, InputError



def _read_roi(path: Path, *, patient: str, phase: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise CohortError(f"cannot read ROI archive: {exc}", patient=patient, phase=phase, path=path) from exc


def assemble_dataset(roi_paths: Mapping[tuple[str, str], str | Path], phases: list[str], out_path: str | Path,
                     out_manifest: str | Path, *, with_patches_of: str | None = None) -> pd.DataFrame:
    """Stack per-patient ROI archives into one compressed `.npz` for training.

    `roi_paths[(patient, phase)]` is each archive. Patients appear in the order of their first key in
    `roi_paths`; every patient must have every phase.
    The archive holds `patient_id` (N,) str, `images` float32 `(N, P, Z, Y, X)` and `masks` uint8
    `(N, P, Z, Y, X)` with phases in the order of `phases`, and with `with_patches_of=PHASE` also
    `patches` float32 `(M, S, S, S)`, `patch_patient` (M,) str and `patch_centres_mm` (M, 3) of that phase.
    Writes the manifest (one row per patient and phase) to `out_manifest` and returns it.
    Refuses a missing phase or a crop shape that differs from the first one, naming the patient.
    """
    if not phases or len(set(phases)) != len(phases):
        raise InputError(f"phases must be a non-empty list without repeats, got {phases}")
    if with_patches_of is not None and with_patches_of not in phases:
        raise InputError(f"with_patches_of={with_patches_of!r} is not one of the phases {phases}")
    patients = list(dict.fromkeys(pid for pid, _ in roi_paths))
    if not patients:
        raise InputError("no ROI archives given; cannot assemble an empty dataset")

    images, masks, rows = [], [], []
    patch_list, patch_owner, centre_list = [], [], []
    expected: tuple[int, ...] | None = None
    for i, pid in enumerate(patients):
        crops, crop_masks = [], []
        for phase in phases:
            if (pid, phase) not in roi_paths:
                raise CohortError("no ROI archive for this phase", patient=pid, phase=phase)
            path = Path(roi_paths[(pid, phase)])
            roi = _read_roi(path, patient=pid, phase=phase)
            shape = tuple(roi["crop"].shape)
            if expected is None:
                expected = shape
            if shape != expected or tuple(roi["crop_mask"].shape) != shape:
                raise CohortError(f"crop shape (z, y, x) {shape} (mask {tuple(roi['crop_mask'].shape)}) differs from "
                                  f"{expected} of patient {patients[0]}, phase {phases[0]}",
                                  patient=pid, phase=phase, path=path)
            crops.append(roi["crop"].astype(np.float32))
            crop_masks.append(roi["crop_mask"].astype(np.uint8))
            n_patches = int(len(roi["patches"]))
            if phase == with_patches_of:
                if n_patches:
                    patch_shape = tuple(roi["patches"].shape[1:])
                    if patch_list and patch_shape != patch_list[0].shape[1:]:
                        raise CohortError(f"patch shape {patch_shape} differs from {patch_list[0].shape[1:]}",
                                          patient=pid, phase=phase, path=path)
                    patch_list.append(roi["patches"].astype(np.float32))
                    centre_list.append(roi["patch_centres_mm"].astype(np.float64))
                    patch_owner.extend([pid] * n_patches)
            rows.append({"patient_id": pid, "phase": phase, "row": i, "crop_shape_zyx": list(shape),
                         "n_patches": n_patches,
                         "patch_fallback": bool(roi["patch_fallback"]) if "patch_fallback" in roi else False,
                         "tumour_volume_mm3": float(roi["tumour_volume_mm3"]) if "tumour_volume_mm3" in roi
                         else float("nan"),
                         "crop_tumour_fraction": float(roi["crop_mask"].mean()),
                         "roi_path": str(path)})
        images.append(np.stack(crops))
        masks.append(np.stack(crop_masks))

    arrays: dict[str, np.ndarray] = {"patient_id": np.asarray(patients, dtype=str),
                                     "images": np.stack(images), "masks": np.stack(masks)}
    if with_patches_of is not None:
        if not patch_list:
            raise CohortError(f"no patient has any patch of phase {with_patches_of}", phase=with_patches_of)
        arrays["patches"] = np.concatenate(patch_list)
        arrays["patch_patient"] = np.asarray(patch_owner, dtype=str)
        arrays["patch_centres_mm"] = np.concatenate(centre_list)

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    manifest = pd.DataFrame(rows)
    write_parquet(manifest, out_manifest)
    return manifest


def load_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """Load an assembled dataset into memory (`patient_id`, `images`, `masks`, maybe `patches`, ...).

    Checks that the arrays agree in length, so a truncated or hand-edited file fails here, not in training.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read dataset: {exc}", path=path) from exc
    missing = {"patient_id", "images", "masks"} - set(data)
    if missing:
        raise InputError(f"dataset lacks array(s) {sorted(missing)}", path=path)
    n = len(data["patient_id"])
    if data["images"].ndim != 5 or data["images"].shape[0] != n or data["masks"].shape != data["images"].shape:
        raise InputError(f"dataset arrays disagree: patient_id {n}, images {data['images'].shape}, "
                         f"masks {data['masks'].shape}", path=path)
    if "patches" in data and len(data["patches"]) != len(data.get("patch_patient", ())):
        raise InputError(f"dataset has {len(data['patches'])} patches but "
                         f"{len(data.get('patch_patient', ()))} patch_patient entries", path=path)
    return data
