"""Parameters of the synthetic cohort and the exact class counts they imply.

The generative model itself (what each label changes and how strongly) is documented in one place:
`docs/synthetic_cohort.md`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from cmdnet.config import default_field, parse_section
from cmdnet.errors import InputError
PHASES = ("PRE", "HBP", "AP")
ORIENTATIONS = ("axial", "row_flipped", "rotated", "oblique")
SLICE_ORDERS = ("ascending", "descending", "shuffled")


@dataclass(frozen=True)
class SynthParams:
    """Everything that shapes a synthetic cohort; same parameters -> same bytes.

    Labels
        n_patients: number of patients (ids `SYN001`, ...).
        seed: seed of every random draw (pixel noise, labels, clinical values, DICOM UIDs).
        mvi_prevalence: relative sizes of M0/M1/M2; scaled to `n_patients` with exact counts by the
            largest-remainder method (default: the CMD-Net paper's 128/93/49).
        grade_high_given_mvi: P(grade = high | M0, M1, M2); grade is thus correlated with MVI.
        edmondson_fraction: fraction of cohort rows whose grade is written as Edmondson I..IV instead of
            low/high (I,II = low; III,IV = high), so the reader's mapping is exercised.

    Signal strengths (0 = no label information; 1 = the documented default effect sizes)
        clinical_signal: scales how much the label-dependent clinical items shift with MVI/grade.
        image_signal: scales how much the tumour's image properties shift with MVI/grade.
        missing_rate: probability that any one clinical cell is empty (missing completely at random).

    Image geometry (closed ranges [low, high], drawn per patient)
        pixel_spacing_mm: in-plane pixel spacing.
        fov_mm: in-plane field of view; the matrix is FOV / spacing clipped to `matrix_size`.
        matrix_size: allowed number of columns (rows are 80-100 % of the columns).
        slice_thickness_mm: slice thickness = spacing between slices.
        n_slices: allowed number of slices (at least enough for a 100 mm slab where the range allows).
        tumour_diameter_mm: tumour diameter range (the label-dependent draw is clipped to it).
        max_tilt_deg: largest tilt of the oblique orientation.
        orientation_weights: shares of (axial, row_flipped, rotated, oblique) patients; exact counts.
        slice_order_weights: shares of (ascending, descending, shuffled) instance/file order; exact counts.
    """

    n_patients: int = default_field("synthetic.n_patients")
    seed: int = default_field("synthetic.seed")
    mvi_prevalence: tuple[float, float, float] = (128, 93, 49)
    grade_high_given_mvi: tuple[float, float, float] = (0.35, 0.55, 0.75)
    edmondson_fraction: float = 0.25
    clinical_signal: float = 1.0
    image_signal: float = default_field("synthetic.image_signal")
    missing_rate: float = 0.08
    pixel_spacing_mm: tuple[float, float] = (2.5, 3.5)
    fov_mm: tuple[float, float] = (220.0, 300.0)
    matrix_size: tuple[int, int] = (64, 96)
    slice_thickness_mm: tuple[float, float] = (3.0, 5.0)
    n_slices: tuple[int, int] = (24, 40)
    tumour_diameter_mm: tuple[float, float] = (20.0, 60.0)
    max_tilt_deg: float = 10.0
    orientation_weights: tuple[float, float, float, float] = (0.6, 0.15, 0.1, 0.15)
    slice_order_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)

    def __post_init__(self) -> None:
        # tuples from JSON/YAML arrive as lists: store tuples so the dataclass stays hashable
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, why: str) -> InputError:
            return InputError(f"synthetic cohort parameter {name!r}: {why} (got {getattr(self, name)!r})")

        if not isinstance(self.n_patients, int) or self.n_patients < 1:
            raise bad("n_patients", "must be a positive integer")
        if self.n_patients > 999:
            raise bad("n_patients", "at most 999 (ids have three digits)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "must be a non-negative integer")
        for name, length in (("mvi_prevalence", 3), ("grade_high_given_mvi", 3), ("orientation_weights", 4),
                             ("slice_order_weights", 3)):
            value = getattr(self, name)
            if len(value) != length or min(value) < 0 or sum(value) <= 0:
                raise bad(name, f"needs {length} non-negative numbers with a positive sum")
        if max(self.grade_high_given_mvi) > 1:
            raise bad("grade_high_given_mvi", "probabilities must be <= 1")
        for name in ("edmondson_fraction", "missing_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise bad(name, "must be in [0, 1)")
        for name in ("clinical_signal", "image_signal", "max_tilt_deg"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        for name in ("pixel_spacing_mm", "fov_mm", "matrix_size", "slice_thickness_mm", "n_slices",
                     "tumour_diameter_mm"):
            value = getattr(self, name)
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                raise bad(name, "needs two positive numbers [low, high] with low <= high")
        if self.tumour_diameter_mm[1] + 10 > self.n_slices[0] * self.slice_thickness_mm[0]:
            raise bad("tumour_diameter_mm", "the largest tumour must fit in the thinnest slab with 5 mm margins")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SynthParams":
        """Build from the `synthetic` config section; an unknown key is an error that names the key."""
        return parse_section(cls, values, "synthetic")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def patient_ids(n_patients: int) -> list[str]:
    """The ids of a synthetic cohort: `SYN001`, `SYN002`, ... (known before the cohort is written)."""
    if n_patients < 1 or n_patients > 999:
        raise InputError(f"n_patients must be in 1..999 (got {n_patients})")
    return [f"SYN{i:03d}" for i in range(1, n_patients + 1)]


def exact_counts(weights: Sequence[float], n: int) -> list[int]:
    """Split `n` into integer counts proportional to `weights` by the largest-remainder method.

    quota_k = n w_k / sum(w); every class gets floor(quota_k), and the remaining units go to the largest
    remainders (ties: the earlier class). Sum of the result is exactly `n`.
    """
    w = np.asarray(weights, dtype=float)
    quota = n * w / w.sum()
    counts = np.floor(quota).astype(int)
    remainder = quota - counts
    order = sorted(range(len(w)), key=lambda k: (-remainder[k], k))
    for k in order[: n - int(counts.sum())]:
        counts[k] += 1
    return [int(c) for c in counts]
