"""TorchScript export: the exported bundle gives the same probabilities as PyTorch (within 1e-5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from cmdnet.product.bundle import load_bundle
from cmdnet.product.export import export_student
from tests.product.test_predict import REPO, ProductCase, build_product_case

# TorchScript is deprecated upstream (torch.export is its successor) but still the format that runs from C++.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> ProductCase:
    return build_product_case(tmp_path_factory.getbasetemp() / "product_case")


def _crops(case: ProductCase) -> np.ndarray:
    """The workflow's crops of every patient `(N, 2, Z, Y, X)`."""
    with np.load(case.root / "mvi.npz") as z:
        return z["images"].astype(np.float32)


def test_exported_ensemble_matches_pytorch_probabilities(case, tmp_path):
    bundle = load_bundle(case.ensemble)
    out = export_student(bundle, tmp_path / "ensemble.pt")
    extra = {"bundle.json": ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["bundle.json"])["method"] == bundle.method

    images = _crops(case)
    expected = bundle.predict_proba(images)
    with torch.no_grad():
        got = scripted(torch.from_numpy(images)).numpy()
    assert got.shape == (len(images), 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(expected[:, 0]) > 1e-3, "patients should get different probabilities (else the test is weak)"
    with torch.no_grad():
        one = scripted(torch.from_numpy(images[:1])).numpy()
    np.testing.assert_allclose(one, expected[:1], atol=1e-5)


def test_export_of_a_bare_network_and_the_cli(case, tmp_path):
    model = load_bundle(case.bundle).members[0]
    out = export_student(model, tmp_path / "one.pt", in_shape_zyx=(8, 16, 16), n_phases=2)
    images = torch.from_numpy(_crops(case)[:3])
    with torch.no_grad():
        expected = torch.softmax(model(images).logits, dim=1).numpy()
        np.testing.assert_allclose(torch.jit.load(str(out))(images).numpy(), expected, atol=1e-5)

    result = subprocess.run([sys.executable, "-m", "cmdnet", "export", str(case.bundle), str(tmp_path / "cli.pt")],
                            capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cli.pt").is_file()
    with torch.no_grad():
        np.testing.assert_allclose(torch.jit.load(str(tmp_path / "cli.pt"))(images).numpy(), expected, atol=1e-5)
