"""Turntable pictures: a sphere's silhouette in each view against the radius its camera must
see, the direction of the turn, and the error colours against matplotlib's colormap."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d.silhouette import silhouette_boundary
from edgevision.recon3d.turntable import error_colormap, turntable_cameras, turntable_image

CENTER, RADIUS = np.array([0.1, 1.0, -0.2]), 0.3
WIDTH, HEIGHT = 96, 128
WHITE = (255, 255, 255)


def views_of(picture: np.ndarray, views: int) -> list[np.ndarray]:
    assert picture.shape == (HEIGHT, WIDTH * views, 3) and picture.dtype == np.uint8
    return np.split(picture, views, axis=1)


def test_a_sphere_is_a_circle_of_the_expected_radius_in_every_view(unit_sphere: tuple) -> None:
    vertices, faces = unit_sphere
    vertices = CENTER + RADIUS * vertices
    cameras = turntable_cameras(vertices, views=4, size=(WIDTH, HEIGHT))
    picture = turntable_image(vertices, faces, views=4, size=(WIDTH, HEIGHT), background=WHITE)
    for camera, view in zip(cameras, views_of(picture, 4)):
        # The view cone tangent to a sphere at distance d: image radius f r / sqrt(d^2 - r^2).
        distance = np.linalg.norm(camera.center - CENTER)
        expected = camera.fx * RADIUS / math.sqrt(distance**2 - RADIUS**2)
        assert 30 < expected < WIDTH / 2  # big enough to measure, and inside the view
        mask = (view != 255).any(axis=2)
        rows, columns = np.nonzero(mask)
        np.testing.assert_allclose(
            [columns.mean(), rows.mean()], [(WIDTH - 1) / 2, (HEIGHT - 1) / 2], atol=0.1
        )
        assert abs(math.sqrt(mask.sum() / math.pi) - expected) < 0.25
        edge = silhouette_boundary(mask) - [(WIDTH - 1) / 2, (HEIGHT - 1) / 2]
        assert np.abs(np.hypot(*edge.T) - (expected - 0.5)).max() < 1.0  # round: no corners


def test_the_cameras_turn_counter_clockwise_about_the_vertical_axis(unit_sphere: tuple) -> None:
    vertices = CENTER + RADIUS * unit_sphere[0]
    cameras = turntable_cameras(vertices, views=8, size=(WIDTH, HEIGHT))
    box_centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    offsets = np.array([camera.center for camera in cameras]) - box_centre
    np.testing.assert_allclose(offsets[:, 1], 0.0, atol=1e-12)  # level with the centre
    np.testing.assert_allclose(np.linalg.norm(offsets, axis=1), np.linalg.norm(offsets[0]), rtol=1e-12)
    angles = np.arctan2(offsets[:, 0], offsets[:, 2])  # from +z towards +x: about +y
    np.testing.assert_allclose(np.unwrap(angles), np.arange(8) * math.pi / 4, atol=1e-12)


def test_the_mesh_just_fills_the_margin(unit_sphere: tuple) -> None:
    # A person-shaped ellipsoid, off the origin: inside 90% of each half image in every view,
    # touching it in one (the distance is the least that fits, not a loose bound).
    vertices = CENTER + unit_sphere[0] * [0.25, 0.85, 0.15]
    fill = []
    for camera in turntable_cameras(vertices, views=8, size=(WIDTH, HEIGHT)):
        pixels, depth = camera.project(vertices)
        assert depth.min() > 0
        fill.append((np.abs(pixels - [camera.cx, camera.cy]) / (0.9 * np.array([WIDTH, HEIGHT]) / 2)).max())
    assert max(fill) == pytest.approx(1.0, abs=1e-9)


def test_the_views_show_the_sphere_turning(unit_sphere: tuple) -> None:
    # Red (BGR) on the +x half, blue on the -x half. From +z, +x is on the right of the picture;
    # a quarter turn later (from +x) all red; from -z, red on the left.
    vertices, faces = unit_sphere
    colors = np.where(vertices[:, :1] > 0, [0.0, 0.0, 255.0], [255.0, 0.0, 0.0])
    picture = turntable_image(CENTER + RADIUS * vertices, faces, colors=colors, views=4, size=(WIDTH, HEIGHT))
    front, side, back, _ = views_of(picture, 4)
    middle = HEIGHT // 2

    def redness(view: np.ndarray, columns: slice) -> float:
        row = view[middle, columns].astype(float)
        covered = (row != 255).any(axis=1)
        return float((row[covered, 2] > row[covered, 0]).mean())

    left, right = slice(0, WIDTH // 2 - 3), slice(WIDTH // 2 + 3, WIDTH)
    assert redness(front, right) == 1.0 and redness(front, left) == 0.0
    assert redness(side, slice(0, WIDTH)) == 1.0
    assert redness(back, left) == 1.0 and redness(back, right) == 0.0


def test_the_error_colormap_spans_the_colormap() -> None:
    colormap = matplotlib.colormaps["viridis"]
    colors = error_colormap(np.array([0.0, 5.0, 10.0, 25.0]), 10.0)
    expected = np.rint(colormap(np.array([0.0, 0.5, 1.0, 1.0]))[:, 2::-1] * 255)  # RGBA to BGR
    np.testing.assert_array_equal(colors, expected.astype(np.uint8))
    assert not np.array_equal(colors[0], colors[2])


@pytest.mark.parametrize(
    "values, vmax, options, message",
    [
        ([1.0, -2.0], 10.0, {}, ">= 0"),
        ([np.nan], 10.0, {}, "values_mm must be finite"),
        ([1.0], 0.0, {}, "vmax must be"),
        ([1.0], 10.0, {"colormap": "nope"}, "unknown matplotlib colormap"),
        (["1 mm"], 10.0, {}, "values_mm must hold numbers"),
    ],
    ids=["negative", "nan", "vmax-0", "colormap", "strings"],
)
def test_bad_errors_are_refused(values: list, vmax: float, options: dict, message: str) -> None:
    with pytest.raises((ConfigError, ShapeError), match=message):
        error_colormap(np.array(values), vmax, **options)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"views": 0}, ConfigError, "views must be"),
        ({"size": (64, 4)}, ConfigError, "height must be"),
        ({"size": (64.0, 64)}, ConfigError, "width must be an integer"),
        ({"size": (64, 64, 3)}, ConfigError, r"size must be \(width, height\)"),
        ({"colors": np.zeros((5, 3))}, ShapeError, "colors must have one row per vertex"),
    ],
    ids=["no-view", "tiny", "float", "three-sizes", "colour-rows"],
)
def test_bad_turntable_options_are_refused(
    unit_sphere: tuple, options: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        turntable_image(*unit_sphere, **options)
