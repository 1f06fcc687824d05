"""Shared test fixtures. `SHARED` is the read-only `../shared` beside the clone (absent in a user's clone)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DICOM = SHARED / "dicom"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run side by side on a 2-core machine: keep torch to one thread each."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def shared_dicom_case(name: str) -> Path:
    """Path of a real-scanner DICOM case in ../shared/dicom, or skip the test with the reason."""
    path = SHARED_DICOM / name
    if not path.is_dir():
        pytest.skip(f"../shared/dicom/{name} is absent (a user's clone has no ../shared); CI always has it")
    return path
