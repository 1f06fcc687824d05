"""Analytic abdominal phantom: body, liver, vessels, spleen, spine and one HCC, rendered on any grid.

The anatomy lives in physical LPS millimetres, so every phase of a patient, whatever its grid, shows the
tumour at the same place. Intensities are arbitrary MR signal units of a fat-suppressed T1 gradient echo
with a hepatobiliary agent (liver bright on HBP). How the tumour depends on MVI and grade is documented in
`docs/synthetic_cohort.md`; `sample_tumour` is the code of that table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from cmdnet.data.synth.geometry import Grid
from cmdnet.data.synth.params import SynthParams

# Tissue signal per phase (PRE, AP, HBP) before the scanner gain, bias field and noise.
TISSUE = {
    "fat": (180.0, 200.0, 190.0),       # fat-suppressed
    "soft": (330.0, 420.0, 380.0),      # muscle, bowel, everything else inside the body
    "spine": (380.0, 420.0, 420.0),
    "spleen": (420.0, 900.0, 520.0),
    "liver": (560.0, 640.0, 1000.0),
    "aorta": (220.0, 1800.0, 520.0),
    "vein": (230.0, 380.0, 420.0),       # IVC and hepatic veins
    "portal": (230.0, 700.0, 450.0),
}
PHASE_INDEX = {"PRE": 0, "AP": 1, "HBP": 2}
EDGE_MM = 0.8  # width of the soft (partial-volume) edge of every structure


@dataclass(frozen=True)
class Tumour:
    """One HCC: an irregular ellipsoid. Lengths in mm, ratios relative to the liver of the same phase.

    The boundary is rho(q) <= 1 + irregularity * f(q/|q|) with q = R^T (p - centre) / semi_axes and
    f(u) = sum_k sin(lobe_freqs_k . u + lobe_phases_k) / sqrt(K/2) (zero mean, unit variance on the sphere).
    """

    centre: np.ndarray            # (3,)
    rotation: np.ndarray          # (3, 3) columns = tumour axes
    semi_axes: np.ndarray         # (3,)
    diameter: float               # nominal diameter (2 x mean semi-axis)
    irregularity: float
    lobe_freqs: np.ndarray        # (K, 3)
    lobe_phases: np.ndarray       # (K,)
    texture_freqs: np.ndarray     # (T, 3) rad/mm
    texture_phases: np.ndarray    # (T,)
    heterogeneity: float          # relative amplitude of the internal texture
    ratio: tuple[float, float, float]   # tumour / liver signal on PRE, AP, HBP
    rim_width: float              # mm, peritumoral band
    hbp_rim_depth: float          # peritumoral hypointensity on HBP: liver x (1 - depth) at the margin
    ap_rim_gain: float            # peritumoral enhancement on AP: liver x (1 + gain) at the margin
    zscores: dict[str, float]     # standardised image features (mean 0, SD 1 at no label effect)


@dataclass(frozen=True)
class Anatomy:
    body_axes: np.ndarray         # (2,) semi-axes of the body ellipse (x, y)
    fat_thickness: float
    liver_centre: np.ndarray
    liver_axes: np.ndarray
    liver_rotation: np.ndarray
    spleen_centre: np.ndarray
    spleen_axes: np.ndarray
    vessels: list[tuple[str, np.ndarray, np.ndarray, float]]   # (tissue, start, end, radius)
    tumour: Tumour


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sample_tumour(rng: np.random.Generator, mvi: int, high_grade: int, params: SynthParams,
                  liver_centre: np.ndarray, liver_axes: np.ndarray) -> Tumour:
    """Draw the tumour of a patient with MVI class `mvi` (0, 1, 2) and grade `high_grade` (0, 1).

    Every label effect is `image_signal x (effect per MVI step x mvi + effect of high grade x high_grade)`,
    added to a patient-level Gaussian; with image_signal = 1 an M2 tumour differs from an M0 one by about
    1.2 SD in each feature, so no single feature (nor all together) separates the classes.
    """
    s = params.image_signal
    z = {
        "log_diameter": rng.normal(), "irregularity": rng.normal(), "hbp_rim": rng.normal(),
        "ap_rim": rng.normal(), "heterogeneity": rng.normal(), "ap_ratio": rng.normal(),
    }
    effect = {  # label shift in SD units (before image_signal)
        "log_diameter": 0.6 * mvi, "irregularity": 0.6 * mvi, "hbp_rim": 0.6 * mvi, "ap_rim": 0.6 * mvi,
        "heterogeneity": 0.3 * mvi + 1.2 * high_grade, "ap_ratio": 1.2 * high_grade,
    }
    feat = {k: z[k] + s * effect[k] for k in z}

    lo, hi = params.tumour_diameter_mm
    diameter = float(np.clip(math.exp(math.log(30.0) + 0.25 * feat["log_diameter"]), lo, hi))
    irregularity = float(np.clip(0.10 + 0.05 * feat["irregularity"], 0.02, 0.35))
    hbp_rim_depth = float(np.clip(0.10 + 0.10 * feat["hbp_rim"], 0.0, 0.6))
    ap_rim_gain = float(np.clip(0.05 + 0.08 * feat["ap_rim"], 0.0, 0.5))
    heterogeneity = float(np.clip(0.08 + 0.04 * feat["heterogeneity"], 0.02, 0.4))
    ap_ratio = float(np.clip(1.45 + 0.15 * feat["ap_ratio"], 0.9, 2.5))
    pre_ratio = float(np.clip(rng.normal(0.80, 0.06) - 0.03 * s * high_grade, 0.5, 1.1))
    hbp_ratio = float(np.clip(rng.normal(0.50, 0.08) - 0.04 * s * high_grade, 0.2, 0.9))

    aspect = rng.uniform(0.85, 1.15, size=3)
    semi_axes = diameter / 2 * aspect / aspect.mean()
    rotation = Rotation.random(random_state=rng).as_matrix()
    # keep the whole tumour plus its rim inside the liver ellipsoid
    room = np.maximum(liver_axes - semi_axes.max() * (1 + 2 * irregularity) - 10.0, 0.0)
    u = _unit_vectors(rng, 1)[0] * rng.uniform(0, 1) ** (1 / 3)
    centre = liver_centre + u * room

    n_lobes, n_tex = 6, 8
    lobe_freqs = _unit_vectors(rng, n_lobes) * rng.uniform(2.0, 4.5, size=(n_lobes, 1))
    tex_freqs = _unit_vectors(rng, n_tex) * (2 * math.pi / rng.uniform(6.0, 14.0, size=(n_tex, 1)))
    return Tumour(
        centre=centre, rotation=rotation, semi_axes=semi_axes, diameter=diameter, irregularity=irregularity,
        lobe_freqs=lobe_freqs, lobe_phases=rng.uniform(0, 2 * math.pi, n_lobes),
        texture_freqs=tex_freqs, texture_phases=rng.uniform(0, 2 * math.pi, n_tex),
        heterogeneity=heterogeneity, ratio=(pre_ratio, ap_ratio, hbp_ratio),
        rim_width=float(rng.uniform(5.0, 8.0)), hbp_rim_depth=hbp_rim_depth, ap_rim_gain=ap_rim_gain,
        zscores={k: float(v) for k, v in feat.items()},
    )


def sample_anatomy(rng: np.random.Generator, mvi: int, high_grade: int, params: SynthParams) -> Anatomy:
    """Draw a patient's abdomen (LPS mm: +x patient left, +y posterior, +z head) and tumour."""
    body_axes = np.array([rng.uniform(140, 170), rng.uniform(105, 130)])
    liver_centre = np.array([-0.38 * body_axes[0], rng.uniform(-20, 0), rng.uniform(-10, 10)])
    liver_axes = np.array([rng.uniform(75, 90), rng.uniform(70, 85), rng.uniform(75, 95)])
    liver_rotation = Rotation.from_euler("z", rng.uniform(-15, 15), degrees=True).as_matrix()
    spleen_centre = np.array([0.6 * body_axes[0], 0.35 * body_axes[1], 20.0])
    spleen_axes = np.array([30.0, 50.0, 50.0]) * rng.uniform(0.85, 1.15)
    tumour = sample_tumour(rng, mvi, high_grade, params, liver_centre, liver_axes)

    top, bottom = 200.0, -200.0
    vessels = [
        ("aorta", np.array([15.0, body_axes[1] - 75, bottom]), np.array([15.0, body_axes[1] - 75, top]), 11.0),
        ("vein", np.array([-25.0, body_axes[1] - 70, bottom]), np.array([-25.0, body_axes[1] - 70, top]), 12.0),
    ]
    hilum = liver_centre + np.array([35.0, 15.0, -15.0])
    for _ in range(4):  # portal branches fanning out from the hilum
        d = np.array([-1.0, rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.8)])
        vessels.append(("portal", hilum, hilum + rng.uniform(45, 75) * d / np.linalg.norm(d),
                        float(rng.uniform(3.5, 6.0))))
    ivc_top = np.array([-25.0, body_axes[1] - 70, liver_centre[2] + 0.6 * liver_axes[2]])
    for _ in range(3):  # hepatic veins converging on the IVC
        d = np.array([-1.0, rng.uniform(-1.2, 0.2), rng.uniform(-0.6, -0.1)])
        vessels.append(("vein", ivc_top, ivc_top + rng.uniform(50, 80) * d / np.linalg.norm(d),
                        float(rng.uniform(3.0, 5.0))))
    return Anatomy(body_axes, float(rng.uniform(10, 25)), liver_centre, liver_axes, liver_rotation,
                   spleen_centre, spleen_axes, vessels, tumour)


def _edge(signed_mm: np.ndarray) -> np.ndarray:
    """Soft inside-weight from a signed distance (positive inside), logistic over ~EDGE_MM."""
    return 1.0 / (1.0 + np.exp(-np.clip(signed_mm / EDGE_MM, -30, 30)))


def _near(p: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the points p (N, 3) within `radius` mm of `centre` (to evaluate local structures cheaply)."""
    d = p - centre.astype(np.float32)
    return np.flatnonzero(np.einsum("ij,ij->i", d, d) < radius * radius)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (mm) of points p (N, 3) to the segment a-b."""
    ab = (b - a).astype(np.float32)
    q = p - a.astype(np.float32)
    t = np.clip((q @ ab) / float(ab @ ab), 0.0, 1.0)
    r = q - t[:, None] * ab
    return np.sqrt(np.einsum("ij,ij->i", r, r))


def tumour_geometry(tumour: Tumour, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signed distance to the margin in mm, positive inside; inside mask) at points p (N, 3)."""
    q = ((p - tumour.centre.astype(np.float32)) @ tumour.rotation.astype(np.float32)) / tumour.semi_axes.astype(
        np.float32)
    rho = np.sqrt(np.einsum("ij,ij->i", q, q))
    u = q / np.maximum(rho, 1e-6)[:, None]
    lobes = np.sin(u @ tumour.lobe_freqs.T.astype(np.float32) + tumour.lobe_phases.astype(np.float32))
    bound = 1.0 + tumour.irregularity * lobes.sum(axis=-1) / math.sqrt(len(tumour.lobe_phases) / 2)
    signed = (bound - rho) * float(tumour.semi_axes.mean())
    return signed, rho <= bound


def tumour_reach(tumour: Tumour) -> float:
    """Radius (mm) around the centre beyond which neither the tumour nor its peritumoral band can reach."""
    lobes_max = math.sqrt(2 * len(tumour.lobe_phases))  # bound of sum_k sin / sqrt(K/2)
    return float(tumour.semi_axes.max() * (1 + tumour.irregularity * lobes_max) + 3 * tumour.rim_width + 5)


def render(anatomy: Anatomy, phase: str, grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image float32 (Z, Y, X) of one phase on `grid` and the tumour mask uint8 (Z, Y, X).

    Signal = gain x bias(p) x tissue(p), then Rician noise |S + sigma (n1 + i n2)|. Structures are
    painted back to front (body, fat, spine, spleen, liver, peritumoral band, vessels, tumour), each with
    a soft edge; local structures are evaluated only near themselves.
    """
    ph = PHASE_INDEX[phase]
    nx, ny, nz = grid.size
    p = grid.physical_points().reshape(-1, 3)
    x, y, z = (np.ascontiguousarray(p[:, i]) for i in range(3))
    tum = anatomy.tumour
    img = np.zeros(len(p), dtype=np.float32)

    def paint(idx: np.ndarray | slice, weight: np.ndarray, value: np.ndarray | float) -> None:
        img[idx] = img[idx] * (1 - weight) + weight * value

    everywhere = slice(None)
    ax, ay = anatomy.body_axes
    body_depth = (1 - np.sqrt((x / ax) ** 2 + (y / ay) ** 2)) * ax   # ~ mm inside the body outline
    paint(everywhere, _edge(body_depth), TISSUE["fat"][ph])
    paint(everywhere, _edge(body_depth - anatomy.fat_thickness), TISSUE["soft"][ph])
    paint(everywhere, _edge(18.0 - np.hypot(x, y - (ay - 45.0))), TISSUE["spine"][ph])

    idx = _near(p, anatomy.spleen_centre, float(anatomy.spleen_axes.max()) + 5)
    rho = np.linalg.norm((p[idx] - anatomy.spleen_centre.astype(np.float32)) / anatomy.spleen_axes.astype(
        np.float32), axis=-1)
    paint(idx, _edge((1 - rho) * 40.0), TISSUE["spleen"][ph])

    liver_idx = _near(p, anatomy.liver_centre, float(anatomy.liver_axes.max()) + 5)
    pl = p[liver_idx]
    q = ((pl - anatomy.liver_centre.astype(np.float32)) @ anatomy.liver_rotation.astype(np.float32)
         ) / anatomy.liver_axes.astype(np.float32)
    liver_w = _edge((1 - np.linalg.norm(q, axis=-1)) * float(anatomy.liver_axes.mean()))
    liver_w *= _edge(body_depth[liver_idx] - anatomy.fat_thickness - 5.0)
    liver_signal = TISSUE["liver"][ph]
    paint(liver_idx, liver_w, liver_signal)

    mask = np.zeros(len(p), dtype=np.uint8)
    tum_idx = _near(p, tum.centre, tumour_reach(tum))
    pt = p[tum_idx]
    signed, inside = tumour_geometry(tum, pt)
    mask[tum_idx] = inside
    if phase in ("HBP", "AP"):
        liver_near = np.zeros(len(p), dtype=np.float32)
        liver_near[liver_idx] = liver_w
        band = np.exp(-((np.maximum(-signed, 0.0) / tum.rim_width) ** 2)) * liver_near[tum_idx] * (signed < 0)
        img[tum_idx] *= (1 - tum.hbp_rim_depth * band) if phase == "HBP" else (1 + tum.ap_rim_gain * band)

    for tissue, a, b, radius in anatomy.vessels:
        if a[2] < -100:  # aorta and IVC run through the whole slab: distance in the axial plane
            paint(everywhere, _edge(radius - np.hypot(x - a[0], y - a[1])), TISSUE[tissue][ph])
        else:  # intrahepatic branches are confined to the liver
            w = _edge(radius - _segment_distance(pl, a, b)) * liver_w
            paint(liver_idx, w, TISSUE[tissue][ph])

    texture = np.cos((pt - tum.centre.astype(np.float32)) @ tum.texture_freqs.T.astype(np.float32)
                     + tum.texture_phases.astype(np.float32)).sum(axis=-1) / math.sqrt(len(tum.texture_phases) / 2)
    paint(tum_idx, _edge(signed), liver_signal * tum.ratio[ph] * (1 + tum.heterogeneity * texture))

    # smooth multiplicative bias field (receive-coil sensitivity), quadratic in the body's coordinates
    c = rng.normal(0, 0.12, size=6)
    xn, yn, zn = x / 200.0, y / 200.0, z / 200.0
    bias = np.exp(c[0] * xn + c[1] * yn + c[2] * zn + c[3] * xn * xn + c[4] * yn * yn + c[5] * xn * yn)
    gain = rng.uniform(0.7, 1.4)
    signal = img * (gain * bias).astype(np.float32)
    sigma = np.float32(rng.uniform(0.03, 0.06) * gain * liver_signal)
    n1 = rng.standard_normal(signal.shape, dtype=np.float32)
    n2 = rng.standard_normal(signal.shape, dtype=np.float32)
    noisy = np.sqrt((signal + sigma * n1) ** 2 + (sigma * n2) ** 2)
    return noisy.reshape(nz, ny, nx).astype(np.float32), mask.reshape(nz, ny, nx)
