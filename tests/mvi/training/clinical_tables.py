"""A small clinical table and its dictionary for the MVI training tests: `afp` carries the label, `albumin` (with
gaps) and `hbv` do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

DICTIONARY = pd.DataFrame({"column": ["afp", "albumin", "hbv"], "name": ["afp", "albumin", "hbv"],
                           "type": ["numeric", "numeric", "binary"], "unit": ["", "g/L", ""],
                           "min": [None, None, None], "max": [None, None, None],
                           "categories": ["", "", "no|yes"], "description": ["", "", ""]})


def clinical_table(labels: pd.Series, rng: np.random.Generator, afp_effect: float) -> pd.DataFrame:
    """One row per patient of `labels` (index: patient ids), drawn from `rng`; every 7th albumin missing."""
    ids = list(labels.index)
    n = len(ids)
    clinical = pd.DataFrame({"afp": labels.to_numpy() * afp_effect + rng.normal(size=n),
                             "albumin": rng.normal(40, 5, size=n),
                             "hbv": (rng.random(n) < 0.5).astype(float)}, index=pd.Index(ids, name="patient_id"))
    clinical.loc[ids[::7], "albumin"] = np.nan
    return clinical
