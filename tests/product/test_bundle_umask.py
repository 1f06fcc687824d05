"""The model bundle directory follows the umask like every other output (another account can read it)."""

from __future__ import annotations

import os
import stat

from cmdnet.product.bundle import write_bundle
from tests.product.test_predict import METHOD, ROI_CFG, build_product_case


def test_bundle_directory_and_files_follow_the_umask(tmp_path_factory, tmp_path):
    case = build_product_case(tmp_path_factory.getbasetemp() / "product_case")
    old = os.umask(0o022)
    try:
        write_bundle(tmp_path / "bundle", [case.models[0]], method=METHOD, roi_cfg=ROI_CFG)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "bundle", *(tmp_path / "bundle").iterdir()]}
    assert modes == {"bundle": 0o755, "bundle.json": 0o644, "model_0.pt": 0o644}, {k: oct(v) for k, v in modes.items()}
