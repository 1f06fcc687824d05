"""Grad-CAM saliency of a bundle's prediction, per phase, on the converted image grid and as a PNG.

Grad-CAM (Selvaraju et al. 2017) on the last convolution block of each phase's encoder (`final_conv`, the
maps `A` of shape `(K, z, y, x)` before global pooling) for the class `c` the bundle predicts:

    w_k = mean_{z,y,x} d logit_c / d A_k,        L = ReLU(sum_k w_k A_k)

`L` is upsampled (trilinear) to the crop `(Z, Y, X)`, averaged over the bundle's members, and divided by its
maximum over all phases (so values lie in [0, 1] and are comparable between phases; all zero when no
location raises the logit). Each phase's map is then resampled (linear, 0 outside the crop) from the crop
grid (its origin and spacing are stored in the ROI archive, identity LPS direction) onto that phase's
converted image grid and written as NIfTI. The PNG overlays the map on the crop's central axial, coronal and
sagittal slices, with the tumour mask's outline: only values of at least `OVERLAY_THRESHOLD` are coloured (a
perceptually uniform colour map, so the image stays readable where the network did not look), each view carries
its orientation letters (radiological convention: the patient's right on the left) and a millimetre scale bar,
and the footer repeats the bundle's research-use notice and training cohort. File names and titles carry only
the patient label given (the cohort's patient_id, or "patient").
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from cmdnet.atomic import atomic_path
from cmdnet.errors import BundleError

OVERLAY_THRESHOLD = 0.5      # fraction of the maximum over phases below which the map is not drawn
OVERLAY_CMAP = "inferno"     # perceptually uniform, readable in grey scale and with colour-vision deficiencies
MASK_COLOUR = "#56B4E9"      # Okabe-Ito sky blue: distinct from every inferno colour

if TYPE_CHECKING:
    from cmdnet.product.bundle import Bundle
    from cmdnet.product.predict import PreparedCase


def _encoders(model: torch.nn.Module, phases: tuple[str, ...], method: str):
    encoders = getattr(model, "encoders", None)
    if not isinstance(encoders, torch.nn.ModuleDict) or any(
            p.lower() not in encoders or not hasattr(encoders[p.lower()], "final_conv") for p in phases):
        raise BundleError(f"saliency needs a CMD-Net student (one convolutional encoder per phase); method "
                          f"{method!r} uses model {type(model).__name__}")
    return {p: encoders[p.lower()].final_conv for p in phases}


def grad_cam(model: torch.nn.Module, images: torch.Tensor, target: int, phases: tuple[str, ...],
             method: str = "?") -> dict[str, np.ndarray]:
    """Unnormalised Grad-CAM of class `target` per phase, upsampled to the crop: `{phase: (Z, Y, X)}`."""
    layers = _encoders(model, phases, method)
    maps: dict[str, torch.Tensor] = {}
    handles = [layer.register_forward_hook(lambda _m, _i, out, p=p: maps.__setitem__(p, out))
               for p, layer in layers.items()]
    try:
        with torch.enable_grad():
            logits = model(images).logits
            grads = torch.autograd.grad(logits[0, target], [maps[p] for p in phases])
    finally:
        for h in handles:
            h.remove()
    out = {}
    for p, g in zip(phases, grads):
        weights = g.mean(dim=(2, 3, 4), keepdim=True)               # (1, K, 1, 1, 1)
        cam = torch.relu((weights * maps[p]).sum(dim=1, keepdim=True))  # (1, 1, z, y, x)
        cam = F.interpolate(cam, size=tuple(images.shape[2:]), mode="trilinear", align_corners=False)
        out[p] = cam[0, 0].detach().double().numpy()
    return out


def bundle_grad_cam(bundle: "Bundle", images: np.ndarray, target: int) -> dict[str, np.ndarray]:
    """Grad-CAM averaged over the members and scaled by its maximum over all phases: `{phase: (Z, Y, X)}`."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    per_member = [grad_cam(m, x, target, bundle.phases, bundle.method) for m in bundle.members]
    cams = {p: np.mean([c[p] for c in per_member], axis=0) for p in bundle.phases}
    peak = max(float(c.max()) for c in cams.values())
    return {p: (c / peak if peak > 0 else c).astype(np.float32) for p, c in cams.items()}


def crop_to_image_grid(cam: np.ndarray, origin_mm: np.ndarray, spacing_mm: np.ndarray,
                       reference: sitk.Image) -> sitk.Image:
    """Resample a crop-grid map `(Z, Y, X)` (identity direction) onto `reference`'s grid (linear, 0 outside)."""
    img = sitk.GetImageFromArray(cam.astype(np.float32))
    img.SetOrigin(tuple(float(v) for v in origin_mm))
    img.SetSpacing(tuple(float(v) for v in spacing_mm))
    return sitk.Resample(img, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def write_saliency(bundle: "Bundle", case: "PreparedCase", out_dir: str | Path, *,
                   patient: str = "patient") -> dict[str, Path]:
    """Write `<patient>_<PHASE>_gradcam.nii.gz` per phase and `<patient>_gradcam.png`; return their paths."""
    out_dir = Path(out_dir)
    probs = bundle.predict_proba(case.images)[0]
    target = int(np.argmax(probs))
    cams = bundle_grad_cam(bundle, case.images, target)
    files: dict[str, Path] = {}
    crops = {}
    for i, phase in enumerate(bundle.phases):
        with np.load(case.roi[phase], allow_pickle=False) as z:
            origin, spacing, mask = z["crop_origin_mm"], z["crop_spacing_mm"], z["crop_mask"]
        crops[phase] = (case.images[0, i], mask, cams[phase], spacing)
        on_grid = crop_to_image_grid(cams[phase], origin, spacing, sitk.ReadImage(str(case.nifti[phase])))
        files[phase] = out_dir / f"{patient}_{phase}_gradcam.nii.gz"
        with atomic_path(files[phase]) as tmp:
            sitk.WriteImage(on_grid, str(tmp), useCompression=True)
    files["png"] = out_dir / f"{patient}_gradcam.png"
    p_any = float(probs[1:].sum())
    _overlay_png(crops, files["png"],
                 f"{patient}: Grad-CAM of the predicted class {bundle.classes[target]} (p = {probs[target]:.2f}; "
                 f"P(any MVI) = {p_any:.2f}); {bundle.method}, {len(bundle.members)} fold model(s)",
                 f"{bundle.notice}\nTrained on: {bundle.training_cohort}.")
    return files


# Orientation letters of the crop's views (LPS grid): (left, right, top, bottom) of the displayed slice.
_VIEW_LETTERS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}


def scale_bar_mm(field_mm: float) -> float:
    """A round bar length (1, 2, 5, 10, 20, 50, 100 mm) of at most a third of the field of view."""
    candidates = [1, 2, 5, 10, 20, 50, 100]
    return float(max([c for c in candidates if c <= field_mm / 3] or [candidates[0]]))


def _label_view(ax, name: str, width_px: int, height_px: int, mm_per_px: float, origin: str) -> None:
    """Orientation letters at the edges and a scale bar in the lower left corner of one view (white with a
    black outline, legible on any grey level)."""
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=2.2, foreground="black")]
    left, right, top, bottom = _VIEW_LETTERS[name]
    style = {"color": "white", "fontsize": 9, "fontweight": "bold", "transform": ax.transAxes,
             "path_effects": outline}
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
    bar_mm = scale_bar_mm(width_px * mm_per_px)
    bar_px = bar_mm / mm_per_px
    x0 = -0.5 + 0.05 * width_px
    y = (height_px - 0.5 - 0.07 * height_px) if origin == "upper" else (-0.5 + 0.07 * height_px)
    ax.plot([x0, x0 + bar_px], [y, y], color="white", linewidth=2.5, solid_capstyle="butt", path_effects=outline)
    ax.annotate(f"{bar_mm:g} mm", (x0 + bar_px / 2, y), xytext=(0, 3), textcoords="offset points", color="white",
                fontsize=8, ha="center", va="bottom", path_effects=outline)


def _overlay_rgba(cam: np.ndarray, colours) -> np.ndarray:
    """RGBA overlay of a map slice: transparent below `OVERLAY_THRESHOLD`, then the colour map with an opacity
    rising from 0.25 to 0.8 at the maximum, so that the image stays visible under weak values."""
    rgba = colours.to_rgba(np.clip(cam, OVERLAY_THRESHOLD, 1.0))
    strength = (cam - OVERLAY_THRESHOLD) / (1.0 - OVERLAY_THRESHOLD)
    rgba[..., 3] = np.where(cam >= OVERLAY_THRESHOLD, 0.25 + 0.55 * np.clip(strength, 0.0, 1.0), 0.0)
    return rgba


def _overlay_png(crops: dict, out: Path, title: str, footer: str) -> None:
    """Rows: phases; columns: central axial, coronal, sagittal slices of the crop with the map overlaid."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from matplotlib.cm import ScalarMappable

    fig = Figure(figsize=(10, 3.1 * len(crops) + 1.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(crops), 3, squeeze=False)
    colours = ScalarMappable(Normalize(OVERLAY_THRESHOLD, 1.0), OVERLAY_CMAP)
    for row, (phase, (image, mask, cam, spacing)) in enumerate(crops.items()):
        sx, sy, sz = (float(v) for v in spacing)
        zc, yc, xc = (n // 2 for n in image.shape)
        # LPS: axial rows run anterior -> posterior (top to bottom); coronal/sagittal put superior (+z) on top.
        views = (("axial", np.s_[zc, :, :], sy / sx, "upper", sx),
                 ("coronal", np.s_[:, yc, :], sz / sx, "lower", sx),
                 ("sagittal", np.s_[:, :, xc], sz / sy, "lower", sy))
        for col, (name, sl, aspect, origin, mm_per_px) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(image[sl], cmap="gray", aspect=aspect, origin=origin)
            ax.imshow(_overlay_rgba(cam[sl], colours), aspect=aspect, origin=origin, interpolation="nearest")
            if mask[sl].any() and not mask[sl].all():
                ax.contour(mask[sl], levels=[0.5], colors=MASK_COLOUR, linewidths=1.2, origin=origin)
            height, width = image[sl].shape
            _label_view(ax, name, width, height, mm_per_px, origin)
            ax.set_title(f"{phase} {name}", fontsize=10)
            ax.set_axis_off()
    fig.colorbar(colours, ax=axes, shrink=0.8,
                 label=f"Grad-CAM, scaled to the maximum over phases (shown from {OVERLAY_THRESHOLD:g})")
    fig.suptitle(title, fontsize=10.5)
    lines = [wrapped for text in f"Blue outline: tumour mask. {footer}".splitlines()
             for wrapped in textwrap.wrap(text, 150)]
    fig.supxlabel("\n".join(lines), fontsize=8.5, color="#333333")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
