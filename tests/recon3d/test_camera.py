"""The pinhole camera: projection against hand-computed values and OpenCV, rays through the
projected points, the camera file's round trip and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgevision.errors import ConfigError, EdgeVisionError, InputFileError, ShapeError
from edgevision.recon3d.camera import Camera, load_camera, look_at, save_camera
from edgevision.recon3d.rays import pixel_rays, plucker

# A quarter turn about +y: world x goes to camera -z, world z to camera x.
QUARTER_TURN_Y = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def random_camera(seed: int) -> Camera:
    rng = np.random.default_rng(seed)
    rotation, _ = cv2.Rodrigues(rng.normal(size=3))
    return Camera(
        fx=rng.uniform(300, 900),
        fy=rng.uniform(300, 900),
        cx=rng.uniform(100, 300),
        cy=rng.uniform(100, 200),
        R=rotation,
        t=rng.normal(size=3),
        width=400,
        height=300,
    )


def points_in_front(camera: Camera, count: int, seed: int) -> np.ndarray:
    """World points at depths 0.5..10 m, anywhere in a wide cone in front of ``camera``."""
    rng = np.random.default_rng(seed)
    camera_points = np.column_stack([rng.uniform(-1, 1, (count, 2)), np.ones(count)]) * rng.uniform(
        0.5, 10, (count, 1)
    )
    return (camera_points - camera.t) @ camera.R  # R^T (x_c - t)


def test_projection_of_hand_computed_points() -> None:
    camera = Camera(
        fx=500.0, fy=400.0, cx=320.0, cy=240.0, R=QUARTER_TURN_Y, t=[0.0, 0.0, 3.0], width=640, height=480
    )
    # (1, 0.5, 0) -> R x = (0, 0.5, -1) -> + t = (0, 0.5, 2): u = 320, v = 400 * 0.25 + 240.
    # (0, -0.2, 1) -> (1, -0.2, 0) -> (1, -0.2, 3): u = 500 / 3 + 320, v = 400 * -0.2 / 3 + 240.
    pixels, depth = camera.project(np.array([[1.0, 0.5, 0.0], [0.0, -0.2, 1.0]]))
    np.testing.assert_allclose(
        pixels, [[320.0, 340.0], [320.0 + 500 / 3, 240.0 - 80 / 3]], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(depth, [2.0, 3.0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_matches_opencv(seed: int) -> None:
    camera = random_camera(seed)
    points = points_in_front(camera, 50, seed)
    expected, _ = cv2.projectPoints(points, cv2.Rodrigues(camera.R)[0], camera.t, camera.K, None)
    pixels, depth = camera.project(points)
    np.testing.assert_allclose(pixels, expected[:, 0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(depth, (points @ camera.R.T + camera.t)[:, 2], rtol=0, atol=1e-12)


def test_center_is_where_the_camera_frame_has_its_origin() -> None:
    camera = random_camera(3)
    np.testing.assert_allclose(camera.R @ camera.center + camera.t, 0.0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixel_rays_pass_through_the_projected_points(seed: int) -> None:
    camera = random_camera(seed)
    points = points_in_front(camera, 50, seed + 10)
    origins, directions = camera.pixel_rays(camera.project(points)[0])
    np.testing.assert_allclose(origins, np.broadcast_to(camera.center, points.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-12)
    along = ((points - origins) * directions).sum(axis=1)
    assert (along > 0).all()  # forward, into the scene
    distance = np.linalg.norm(points - origins - along[:, None] * directions, axis=1)
    assert distance.max() < 1e-9


def test_numpy_numbers_are_accepted_as_intrinsics() -> None:
    camera = Camera(
        np.float32(500.5), np.float64(400), np.int64(320), 240.0, np.eye(3), np.zeros(3), np.int32(640), 480
    )
    assert (camera.fx, camera.fy, camera.cx, camera.width) == (500.5, 400.0, 320.0, 640)
    assert type(camera.fx) is float and type(camera.width) is int


def test_look_at_centres_the_target_with_up_upwards() -> None:
    eye, target = np.array([2.0, 1.5, 3.0]), np.array([0.1, 0.9, -0.2])
    rotation, translation = look_at(eye, target, np.array([0.0, 1.0, 0.0]))
    camera = Camera(fx=500.0, fy=500.0, cx=319.5, cy=239.5, R=rotation, t=translation, width=640, height=480)
    np.testing.assert_allclose(camera.center, eye, atol=1e-12)
    pixels, depth = camera.project(np.stack([target, target + [0.0, 0.1, 0.0]]))
    np.testing.assert_allclose(pixels[0], [319.5, 239.5], atol=1e-9)
    np.testing.assert_allclose(depth[0], np.linalg.norm(target - eye), atol=1e-12)
    assert pixels[1, 1] < pixels[0, 1] - 1  # world up is image up (smaller v)
    assert abs(pixels[1, 0] - pixels[0, 0]) < 1e-9  # and vertical


def test_look_at_world_x_is_image_right_seen_from_plus_z() -> None:
    rotation, translation = look_at(np.array([0.0, 0.0, 5.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(rotation, np.diag([1.0, -1.0, -1.0]), atol=1e-15)
    np.testing.assert_allclose(translation, [0.0, 0.0, 5.0], atol=1e-15)


@pytest.mark.parametrize(
    "eye, target, up",
    [([0, 0, 1], [0, 0, 1], [0, 1, 0]), ([0, 0, 1], [0, 0, 0], [0, 0, 2]), ([0, 0, 1], [0, 0, 0], [0, 0, 0])],
    ids=["eye-is-target", "up-along-view", "zero-up"],
)
def test_look_at_refuses_degenerate_frames(eye: list, target: list, up: list) -> None:
    with pytest.raises(ConfigError, match="look_at"):
        look_at(np.array(eye, float), np.array(target, float), np.array(up, float))


def test_camera_file_round_trip_is_exact(tmp_path: Path) -> None:
    camera = random_camera(4)
    save_camera(camera, tmp_path / "camera.json")
    loaded = load_camera(tmp_path / "camera.json")
    assert loaded.to_dict() == camera.to_dict()
    assert np.array_equal(loaded.R, camera.R) and np.array_equal(loaded.t, camera.t)


GOOD = {
    "fx": 500.0,
    "fy": 500.0,
    "cx": 319.5,
    "cy": 239.5,
    "R": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    "t": [0.0, 0.0, 3.0],
    "width": 640,
    "height": 480,
}


def edited(**changes: object) -> str:
    data = {**GOOD, **changes}
    return json.dumps({key: value for key, value in data.items() if value is not ...})


BAD_FILES = {
    "not-json": ("{fx: 1", "not JSON"),
    "a-list": ("[1, 2, 3]", "JSON object"),
    "missing-key": (edited(cy=...), "missing cy"),
    "unknown-key": (edited(k1=0.1), "unknown key.*k1"),
    "R-2x3": (edited(R=[[1, 0, 0], [0, 1, 0]]), r"R must have shape \(3, 3\)"),
    "R-ragged": (edited(R=[[1, 0, 0], [0, 1], [0, 0, 1]]), "R must be a rectangular array"),
    "R-strings": (edited(R=[["1", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]]), "R must hold numbers"),
    "R-scaled": (edited(R=[[2, 0, 0], [0, 2, 0], [0, 0, 2]]), "R must be a rotation"),
    "R-reflection": (edited(R=[[1, 0, 0], [0, 1, 0], [0, 0, -1]]), "R must be a rotation"),
    "R-off-by-1e-5": (edited(R=[[1, 1e-5, 0], [0, 1, 0], [0, 0, 1]]), "R must be a rotation"),
    "R-nan": (edited(R=[[1, 0, 0], [0, float("nan"), 0], [0, 0, 1]]), "R must be finite"),
    "t-length-2": (edited(t=[0, 0]), r"t must have shape \(3,\)"),
    "t-infinite": (edited(t=[0, float("inf"), 3]), "t must be finite"),
    "fx-nan": (edited(fx=float("nan")), "fx must be a finite number"),
    "fx-zero": (edited(fx=0.0), r"fx must be a finite number in \(0"),
    "fy-negative": (edited(fy=-500.0), r"fy must be a finite number in \(0"),
    "fx-string": (edited(fx="500"), "fx must be a finite number"),
    "cx-bool": (edited(cx=True), "cx must be a finite number"),
    "width-zero": (edited(width=0), "width must be an integer"),
    "height-float": (edited(height=480.5), "height must be an integer"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_file_that_is_not_a_camera_gives_one_line(tmp_path: Path, name: str) -> None:
    text, message = BAD_FILES[name]
    path = tmp_path / "camera.json"
    path.write_text(text)
    with pytest.raises(InputFileError, match=message) as caught:
        load_camera(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_camera_file_gives_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="camera file not found"):
        load_camera(tmp_path / "nowhere.json")


def test_the_good_camera_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "camera.json"
    path.write_text(edited())
    assert load_camera(path).to_dict() == GOOD


@pytest.mark.parametrize(
    "method, argument",
    [("project", np.zeros((4, 2))), ("project", np.full((1, 3), np.nan)), ("pixel_rays", np.zeros(2))],
    ids=["points-2-columns", "points-nan", "pixels-1d"],
)
def test_bad_points_are_refused(method: str, argument: np.ndarray) -> None:
    camera = random_camera(5)
    with pytest.raises((ShapeError, ConfigError)) as caught:
        getattr(camera, method)(argument)
    assert isinstance(caught.value, EdgeVisionError) and "\n" not in str(caught.value)


def test_pixel_rays_are_the_rays_module_s_plucker_lines() -> None:
    # The consensus step may take rays from either: both must read pixels the same way.
    camera = random_camera(6)
    pixels = camera.project(points_in_front(camera, 20, 6))[0]
    origins, directions = camera.pixel_rays(pixels)
    expected = plucker(torch.from_numpy(origins), torch.from_numpy(directions))
    K, R, t = (torch.tensor(value) for value in (camera.K, camera.R, camera.t))
    np.testing.assert_allclose(pixel_rays(torch.from_numpy(pixels), K, R, t), expected, rtol=0, atol=1e-12)
