"""The MakeHuman body, loaded once per session (float64, so tolerances test the maths, not the
rounding); tests that need it skip when the shared data is absent. And a unit sphere mesh, for
the camera, renderer and pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from edgevision.recon3d.body import BodyModel


@pytest.fixture(scope="session")
def body_dir(data_dir: Path) -> Path:
    folder = data_dir / "body_model"
    if not (folder / "base.obj").is_file():
        pytest.skip(f"MakeHuman body not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def full_body(body_dir: Path) -> BodyModel:
    return BodyModel.load(body_dir, dtype=torch.float64)


@pytest.fixture(scope="session")
def small_body(full_body: BodyModel) -> BodyModel:
    """The decimated body (about 2,700 vertices)."""
    return full_body.decimated()


@pytest.fixture(scope="session")
def unit_sphere() -> tuple[np.ndarray, np.ndarray]:
    """A unit sphere: 2000 evenly spread vertices (a Fibonacci lattice), the 3996 triangles of
    their convex hull, each wound counter-clockwise seen from outside."""
    count = 2000
    index = np.arange(count) + 0.5
    polar, azimuth = np.arccos(1 - 2 * index / count), np.pi * (1 + 5**0.5) * index
    vertices = np.column_stack(
        [np.cos(azimuth) * np.sin(polar), np.cos(polar), np.sin(azimuth) * np.sin(polar)]
    )
    faces = ConvexHull(vertices).simplices
    corners = vertices[faces]
    inward = (
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]) * corners.mean(axis=1)
    ).sum(1) < 0
    faces[inward] = faces[inward][:, ::-1]
    return vertices, faces
