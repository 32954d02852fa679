"""Normals and Lambert shading against hand-computed values and a sphere's radial normals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d.shading import face_normals, shade, vertex_normals

# Two triangles in the plane z = 0, counter-clockwise from +z, and one vertex in no face.
FAN_VERTICES = np.array(
    [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [-1.0, -1.0, 0.0], [5.0, 5.0, 5.0]]
)
FAN_FACES = np.array([[0, 1, 2], [0, 3, 1]])


def test_face_normals_follow_the_right_hand_rule() -> None:
    np.testing.assert_allclose(face_normals(FAN_VERTICES, FAN_FACES), [[0, 0, 1], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(
        face_normals(FAN_VERTICES, FAN_FACES[:, ::-1]), [[0, 0, -1], [0, 0, -1]], atol=1e-15
    )
    # Unnormalised, their length is twice the area: 2 * 3 and 2 * 1.
    np.testing.assert_allclose(
        face_normals(FAN_VERTICES, FAN_FACES, unit=False), [[0, 0, 6], [0, 0, 2]], atol=1e-15
    )


def test_vertex_normals_of_a_flat_fan_and_a_lone_vertex() -> None:
    normals = vertex_normals(FAN_VERTICES, FAN_FACES)
    np.testing.assert_allclose(normals[:4], np.tile([0.0, 0.0, 1.0], (4, 1)), atol=1e-15)
    np.testing.assert_array_equal(normals[4], 0.0)


def test_vertex_normals_of_a_sphere_are_radial(unit_sphere: tuple[np.ndarray, np.ndarray]) -> None:
    vertices, faces = unit_sphere
    normals = vertex_normals(vertices, faces)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-12)
    assert (normals * vertices).sum(axis=1).min() > 0.999  # within 2.6 degrees of the radius


def test_shade_is_lambert_with_ambient() -> None:
    normals = np.array(
        [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [0.0, math.sin(math.pi / 3), 0.5]]
    )
    brightness = shade(normals, np.array([0.0, 0.0, 2.0]), ambient=0.2)  # any length
    # cos 0 = 1; perpendicular and facing away: ambient only; 60 degrees: 0.2 + 0.8 * 0.5.
    np.testing.assert_allclose(brightness, [1.0, 0.2, 0.2, 0.6], atol=1e-12)


@pytest.mark.parametrize(
    "light, ambient, message",
    [
        ([0.0, 0.0, 0.0], 0.3, "light must be a non-zero"),
        ([0.0, 0.0, 1.0], 1.5, "ambient must be"),
        ([0.0, np.nan, 1.0], 0.3, "light must be finite"),
    ],
    ids=["zero-light", "ambient-1.5", "nan-light"],
)
def test_bad_light_is_refused(light: list, ambient: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        shade(np.array([[0.0, 0.0, 1.0]]), np.array(light), ambient=ambient)


def test_faces_out_of_range_are_refused() -> None:
    with pytest.raises(ShapeError, match="faces index vertices 0..4"):
        vertex_normals(FAN_VERTICES, np.array([[0, 1, 5]]))
