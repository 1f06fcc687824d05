"""Fake personal identifiers for synthetic patients.

They are invented, but placed everywhere a real export holds identifiers (DICOM headers, the clinical
sheet's `name` column), so the pipeline's privacy checks have something real to find and drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GIVEN_NAMES = ("Alice", "Bruno", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi",
               "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tomoko", "Umar", "Vera",
               "Wei", "Ximena", "Yusuf", "Zoe")
FAMILY_NAMES = ("Abbott", "Brenner", "Castillo", "Dvorak", "Eriksen", "Fontaine", "Gallo", "Horvath", "Ito",
                "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi",
                "Schmidt", "Tanaka", "Ueda", "Varga", "Wong", "Xu", "Yilmaz", "Zhang")
INSTITUTIONS = ("Synthetic General Hospital", "Example University Medical Centre", "Fictional Liver Institute")
REFERRERS = ("House^Gregory", "Quinn^Michaela", "Kildare^James", "Grey^Meredith")


@dataclass(frozen=True)
class FakeIdentity:
    """Identifiers of one synthetic patient (none of them equals the cohort's patient_id)."""

    given: str
    family: str
    mrn: str                 # DICOM PatientID
    birth_date: str          # YYYYMMDD
    sex: str                 # M or F
    age_years: int
    institution: str
    accession: str
    referring_physician: str
    study_date: str          # YYYYMMDD

    @property
    def dicom_name(self) -> str:
        return f"{self.family}^{self.given}"

    @property
    def full_name(self) -> str:
        return f"{self.given} {self.family}"


def fake_identity(rng: np.random.Generator, sex: str, age_years: int) -> FakeIdentity:
    """Draw one patient's fake identifiers; birth date is consistent with the age at the study date."""
    study_year = int(rng.integers(2016, 2023))
    study_date = f"{study_year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    birth_date = f"{study_year - age_years - 1}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    return FakeIdentity(
        given=str(rng.choice(GIVEN_NAMES)), family=str(rng.choice(FAMILY_NAMES)),
        mrn=f"MRN{int(rng.integers(1_000_000, 9_999_999))}", birth_date=birth_date, sex=sex, age_years=age_years,
        institution=str(rng.choice(INSTITUTIONS)), accession=f"ACC{int(rng.integers(10**7, 10**8))}",
        referring_physician=str(rng.choice(REFERRERS)), study_date=study_date,
    )
