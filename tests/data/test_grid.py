"""Grids without pixels: the LPS reorientation computed from a header equals SimpleITK's DICOMOrient."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from cmdnet.data.grid import grid_mismatch, grid_of, to_lps


def test_header_reorientation_matches_dicomorient_for_any_orientation():
    rng = np.random.default_rng(0)
    for trial in range(200):
        permutation = np.zeros((3, 3))
        permutation[rng.permutation(3), np.arange(3)] = rng.choice([-1, 1], 3)
        axis = rng.normal(size=3)
        angle = rng.uniform(0, np.radians(60))          # oblique, beyond 45 degrees too
        direction = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix() @ permutation
        image = sitk.Image([int(n) for n in rng.integers(2, 9, 3)], sitk.sitkUInt8)
        image.SetDirection(tuple(direction.ravel()))
        image.SetSpacing(tuple(rng.uniform(0.5, 4, 3)))
        image.SetOrigin(tuple(rng.normal(0, 50, 3)))
        mismatch = grid_mismatch(to_lps(grid_of(image)), grid_of(sitk.DICOMOrient(image, "LPS")))
        assert mismatch is None, f"trial {trial}: {mismatch}"


def test_grid_mismatch_names_the_first_difference():
    image = sitk.Image([4, 5, 6], sitk.sitkUInt8)
    moved = sitk.Image(image)
    moved.SetOrigin((0.0, 0.002, 0.0))
    assert grid_mismatch(grid_of(moved), grid_of(image)).startswith("origin (0, 0.002, 0) != image (0, 0, 0)")
    assert grid_mismatch(grid_of(image[:, :, :5]), grid_of(image)) == "size (4, 5, 5) != image (4, 5, 6)"
