"""Model bundles: everything needed to assess a new patient from MRI alone, in one directory.

A bundle is a directory (the workflow writes `results/models/<method>/`) holding

* `bundle.json`: `format_version`, `cmdnet_version`, `method`, `model` (registry name), `strategy`, `phases`,
  `classes`, the exact preprocessing (`orientation` "LPS", float32 volumes, the ROI parameters used to cut
  the crops: shape, margin, normalisation ...), the config sections used for training, a summary of the
  training cohort (number of patients, label counts, whether it was synthetic, a one-line `description`;
  never a patient id), the research-use `notice` that `cmdnet predict` repeats with every prediction, and one
  entry per member (`file`, `fold`, `best_epoch`, `n_train`, `sha256` of the file);
* `model_<k>.pt`, one per member: plain data only (registry name, keyword arguments, weights, phases),
  loadable with `torch.load(..., weights_only=True)`. The fold models' patient lists are *not* copied.

Strategy `fold_ensemble` (the only one implemented): the members are the K fold models of the method, each
trained on K-1 folds; a prediction is the mean of the members' softmax probabilities,
`p(c | x) = (1/K) * sum_k softmax(f_k(x))_c`.

A bundle written by another cmdnet major.minor version, or in another `format_version`, is refused on loading
(`BundleError` naming both versions): preprocessing or model code may have changed in between.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from cmdnet import __version__
from cmdnet.errors import BundleError
from cmdnet.labels import MVI_CLASSES
from cmdnet.data.roi import RoiParams
from cmdnet.atomic import _umask

FORMAT_VERSION = 1
NOTICE = "Research use only: not a medical device and not validated for clinical decisions."
BUNDLE_JSON = "bundle.json"
CLASSES = MVI_CLASSES
STRATEGIES = ("fold_ensemble",)
# Keys of a fold model's payload that a bundle member keeps; `train_ids`/`val_ids` (patient ids) are dropped.
_MEMBER_KEYS = ("builder", "kwargs", "state_dict", "phases", "kind", "name", "fold", "best_epoch", "cmdnet_version")


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def check_compatible(meta: Mapping[str, Any], where: str | Path) -> None:
    """Raise BundleError unless `meta` (a bundle.json) was written by this cmdnet major.minor and format."""
    theirs = str(meta.get("cmdnet_version", "unknown"))
    fmt = meta.get("format_version")
    if fmt != FORMAT_VERSION:
        raise BundleError(f"{where}: bundle format version {fmt} (written by cmdnet {theirs}) cannot be read by "
                          f"cmdnet {__version__}, which reads format version {FORMAT_VERSION}; rebuild the bundle "
                          "with this cmdnet (rule train_final)")
    if _major_minor(theirs) != _major_minor(__version__):
        raise BundleError(f"{where}: bundle written by cmdnet {theirs}, this is cmdnet {__version__}; "
                          "major.minor versions differ, so preprocessing or models may differ: rebuild the bundle "
                          "with this cmdnet (rule train_final) or install cmdnet "
                          f"{'.'.join(_major_minor(theirs))}.x")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _label_counts(codes: pd.Series) -> dict[str, int]:
    counts = codes.astype(int).value_counts()
    return {name: int(counts.get(c, 0)) for c, name in enumerate(CLASSES)}


def cohort_summary(payloads: Sequence[Mapping[str, Any]], labels: pd.Series | None) -> dict[str, Any]:
    """Size and label counts of the patients the members were trained on (the union of their training sets).

    `labels` maps patient_id -> MVI code (0, 1, 2). The result holds counts only, never an id.
    """
    union = sorted({p for payload in payloads for p in payload["train_ids"]})
    summary: dict[str, Any] = {"n_patients": len(union)}
    per_member = [{"fold": int(p["fold"]), "n_train": len(p["train_ids"])} for p in payloads]
    if labels is not None:
        missing = sorted(set(union) - set(labels.index))
        if missing:
            raise BundleError(f"{len(missing)} training patient(s) of the fold models have no MVI label in the "
                              "labels table; was it made from another cohort?")
        summary["label_counts"] = _label_counts(labels.loc[union])
        for entry, p in zip(per_member, payloads):
            entry["label_counts"] = _label_counts(labels.loc[list(p["train_ids"])])
    summary["per_member"] = per_member
    return summary


def training_cohort_description(summary: Mapping[str, Any]) -> str:
    """One line for users: "SYNTHETIC cohort of 64 patients (M0 30, M1 22, M2 12): ..." from a cohort summary."""
    counts = summary.get("label_counts")
    size = f"{summary.get('n_patients', '?')} patients" + (
        f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else "")
    synthetic = summary.get("synthetic")
    if synthetic is True:
        return (f"SYNTHETIC cohort of {size}, simulated by cmdnet: for testing the software only; its "
                "predictions on real patients mean nothing")
    if synthetic is False:
        return f"real cohort of {size} (the workflow's configured cohort sheet)"
    return f"cohort of {size}; the bundle does not record whether it was synthetic"


def _member_payload(path: Path, method: str) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise BundleError(f"{path}: cannot read model file: {exc}") from exc
    if payload.get("kind") != "method" or payload.get("name") != method:
        raise BundleError(f"{path}: is a {payload.get('kind')} model of {payload.get('name')!r}, not a model of "
                          f"method {method!r}; only image-only methods can be bundled")
    return payload


def write_bundle(out_dir: str | Path, model_paths: Sequence[str | Path], *, method: str,
                 roi_cfg: Mapping[str, Any], labels: pd.Series | None = None,
                 config_sections: Mapping[str, Any] | None = None,
                 strategy: str = "fold_ensemble", synthetic: bool | None = None) -> dict[str, Any]:
    """Write a bundle of the fold models `model_paths` of `method` to `out_dir` (atomically); return bundle.json.

    `roi_cfg` is the `roi` config section the crops of the training data were made with; `labels` maps the
    training patients' ids to MVI codes (for the cohort summary only); `synthetic` says whether the training
    cohort was cmdnet's synthetic one (None: not known); `config_sections` are stored verbatim
    (JSON-serialisable). The directory is built beside `out_dir` and renamed into place, replacing an older one.
    """
    if strategy not in STRATEGIES:
        raise BundleError(f"bundle strategy {strategy!r} is not implemented; available: {', '.join(STRATEGIES)}")
    if not model_paths:
        raise BundleError("no fold model given; a bundle needs at least one member")
    roi = RoiParams.from_dict({**roi_cfg, "make_patches": False})
    payloads = [_member_payload(Path(p), method) for p in model_paths]
    first = payloads[0]
    for path, p in zip(model_paths, payloads):
        if p["builder"] != first["builder"] or p["kwargs"] != first["kwargs"] or p["phases"] != first["phases"]:
            raise BundleError(f"{path}: network or phases differ from {model_paths[0]}; members of one bundle "
                              "must be the same network")
    in_shape = [int(v) for v in first["kwargs"].get("in_shape_zyx", [])]
    if in_shape != list(roi.crop_shape_xyz[::-1]):
        raise BundleError(f"the models take crops of shape (z, y, x) {in_shape} but the ROI config makes "
                          f"{list(roi.crop_shape_xyz[::-1])} (crop_shape_xyz {list(roi.crop_shape_xyz)}); give the "
                          "roi config the models were trained with")

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the bundle follows the umask like every output
    try:
        members = []
        for k, p in enumerate(payloads):
            name = f"model_{k}.pt"
            torch.save({key: p[key] for key in _MEMBER_KEYS if key in p}, tmp / name)
            members.append({"file": name, "fold": int(p["fold"]), "best_epoch": p.get("best_epoch"),
                            "n_train": len(p["train_ids"]), "sha256": _sha256(tmp / name)})
        meta = {
            "format_version": FORMAT_VERSION,
            "cmdnet_version": __version__,
            "method": method,
            "model": first["builder"],
            "strategy": strategy,
            "ensemble": "mean of the members' softmax probabilities",
            "phases": list(first["phases"]),
            "classes": list(CLASSES),
            "preprocessing": {
                "conversion": "cmdnet.data.dicom.convert_series: one series per phase, rescale slope/intercept applied",
                "orientation": "LPS",
                "dtype": "float32",
                "roi": json.loads(json.dumps(dataclasses.asdict(roi))),
                "crop_shape_zyx": in_shape,
                "crop_spacing": "per patient: (tumour box + 2 * margin_mm) / crop_shape_xyz per axis",
                "interpolation": {"image": "linear", "mask": "nearest"},
            },
            "members": members,
            "training_cohort": {"synthetic": synthetic, **cohort_summary(payloads, labels)},
            "notice": NOTICE,
            "config": dict(config_sections or {}),
        }
        meta["training_cohort"]["description"] = training_cohort_description(meta["training_cohort"])
        (tmp / BUNDLE_JSON).write_text(json.dumps(meta, indent=2) + "\n")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _replace_dir(new: Path, target: Path) -> None:
    """Rename `new` onto `target`; an existing `target` is moved aside first and removed afterwards."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class Bundle:
    """A loaded bundle: its `bundle.json` (`meta`) and the member networks in eval mode."""

    path: Path
    meta: dict[str, Any]
    members: list[nn.Module]

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(self.meta["phases"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta["classes"])

    @property
    def method(self) -> str:
        return str(self.meta["method"])

    @property
    def notice(self) -> str:
        """The research-use notice (bundles written before it existed get the current one)."""
        return str(self.meta.get("notice", NOTICE))

    @property
    def training_cohort(self) -> str:
        """One line on the cohort the members were trained on, saying whether it was synthetic."""
        summary = self.meta.get("training_cohort", {})
        return str(summary.get("description") or training_cohort_description(summary))

    def roi_params(self) -> RoiParams:
        """The ROI parameters of training, for crops only (no patches)."""
        return RoiParams.from_dict({**self.meta["preprocessing"]["roi"], "make_patches": False})

    @torch.no_grad()
    def member_probabilities(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Softmax probabilities of every member: `(B, P, Z, Y, X) -> (K, B, C)` float64."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        return np.stack([torch.softmax(m(x).logits.float(), dim=1).double().numpy() for m in self.members])

    def predict_proba(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """The bundle's prediction `(B, C)`: the mean of the members' softmax probabilities."""
        return self.member_probabilities(images).mean(axis=0)


def load_bundle(path: str | Path) -> Bundle:
    """Read and check a bundle directory; refuse another version, a missing or altered member file."""
    from cmdnet.mvi.models import build_model

    path = Path(path)
    meta_path = path / BUNDLE_JSON
    if not meta_path.is_file():
        raise BundleError(f"{path}: not a model bundle (no {BUNDLE_JSON})")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{meta_path}: cannot read: {exc}") from exc
    check_compatible(meta, path)
    members = []
    for entry in meta["members"]:
        file = path / entry["file"]
        if not file.is_file():
            raise BundleError(f"{path}: member file {entry['file']} is missing")
        if _sha256(file) != entry["sha256"]:
            raise BundleError(f"{file}: contents differ from the checksum in {BUNDLE_JSON} (altered or truncated)")
        payload = torch.load(file, map_location="cpu", weights_only=True)
        model = build_model(payload["builder"], **payload["kwargs"])
        model.load_state_dict(payload["state_dict"])
        model.eval()
        members.append(model)
    return Bundle(path, meta, members)
