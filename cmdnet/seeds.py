"""Every random number stream of a run is derived from the run's one `seed` and the purpose it serves.

`derive_seed(seed, "init", "ours", 0, 3)` names the purpose (here: initialising method `ours`, repeat 0, fold 3),
so two streams never coincide by accident (a teacher and its student start from independent weights), adding a
method does not shift another's numbers, and the same seed gives the same numbers.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np


def derive_seed(seed: int, *purpose: str | int) -> int:
    """A 31-bit seed for one purpose (stable across Python processes and versions)."""
    blob = json.dumps([int(seed), *purpose], separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def numpy_rng(seed: int, *purpose: str | int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *purpose))
