"""The pinhole camera of the reconstruction: projection, pixel rays, and its JSON file.

Conventions (OpenCV's): world to camera is ``x_c = R x_w + t``; the camera's x axis points right
in the image, y down, z forward (depth). Units are metres and pixels. A pixel's centre lies at
integer coordinates: the pixel in column ``j``, row ``i`` is centred at ``(u, v) = (j, i)``, as in
``cv2.projectPoints``; so a principal point in the middle of a ``W x H`` image is
``((W - 1) / 2, (H - 1) / 2)``. No lens distortion.

A camera file is a JSON object with exactly the keys ``fx fy cx cy`` (pixels), ``R`` (3x3
rotation, rows), ``t`` (3, metres), ``width height`` (pixels, integers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgevision.data.io import atomic_write, read_json
from edgevision.errors import ConfigError, DatasetError, InputFileError, ShapeError
from edgevision.recon3d._checks import as_numbers, as_rows, check_finite
from edgevision.validation import check_integer, check_number

# How far R may be from a rotation (|R R^T - I| and |det R - 1|, elementwise): loose enough for
# a rotation written to JSON with 15 digits or composed of a few float64 products, tight enough to
# refuse a scaled or sheared matrix.
ROTATION_TOLERANCE = 1e-6

CAMERA_KEYS = ("fx", "fy", "cx", "cy", "R", "t", "width", "height")


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera: intrinsics ``fx fy cx cy`` (pixels), extrinsics ``R`` (3, 3) and ``t``
    (3,) (world to camera, metres), image ``width x height`` (pixels). Checked on construction
    (one-line :class:`ConfigError` or :class:`ShapeError`)."""

    fx: float
    fy: float
    cx: float
    cy: float
    R: np.ndarray = field(repr=False)
    t: np.ndarray = field(repr=False)
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy", "width", "height"):
            object.__setattr__(self, name, _plain(getattr(self, name)))
        for name in ("fx", "fy"):
            object.__setattr__(
                self, name, check_number(name, getattr(self, name), 0.0, math.inf, low_open=True)
            )
        for name in ("cx", "cy"):
            object.__setattr__(self, name, check_number(name, getattr(self, name), -math.inf, math.inf))
        for name in ("width", "height"):
            check_integer(name, getattr(self, name), 1)
        rotation = check_finite("R", _shaped("R", self.R, (3, 3)))
        error = max(np.abs(rotation @ rotation.T - np.eye(3)).max(), abs(np.linalg.det(rotation) - 1.0))
        if error > ROTATION_TOLERANCE:
            raise ConfigError(
                f"R must be a rotation (orthonormal, det +1), off by {error:.3g} (> {ROTATION_TOLERANCE:g})"
            )
        translation = check_finite("t", _shaped("t", self.t, (3,)))
        rotation.flags.writeable = translation.flags.writeable = False
        object.__setattr__(self, "R", rotation)
        object.__setattr__(self, "t", translation)

    @property
    def K(self) -> np.ndarray:
        """The (3, 3) intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def center(self) -> np.ndarray:
        """The camera centre in world coordinates, (3,) metres: ``-R^T t``."""
        return -self.R.T @ self.t

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) to camera coordinates (N, 3), metres."""
        return as_rows("points", points, 3) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points (N, 3) to pixels (N, 2) ``(u, v)`` and their depths (N,), metres
        along the optical axis. A point with depth <= 0 is behind the camera: its pixel is
        meaningless (inf or mirrored), and the caller checks the depth."""
        camera_points = self.to_camera(points)
        depth = camera_points[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = camera_points[:, :2] / depth[:, None] * [self.fx, self.fy] + [self.cx, self.cy]
        return pixels, depth

    def pixel_rays(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The world rays through pixels (N, 2): origins (N, 3) (the camera centre) and unit
        directions (N, 3), pointing forward (into the scene)."""
        pixels = as_rows("pixels", pixels, 2)
        normalised = np.column_stack(
            [(pixels[:, 0] - self.cx) / self.fx, (pixels[:, 1] - self.cy) / self.fy, np.ones(len(pixels))]
        )
        directions = normalised @ self.R  # each row R^T d: camera to world
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return np.repeat(self.center[None], len(pixels), axis=0), directions

    def to_dict(self) -> dict[str, object]:
        """The camera as its JSON object (see the module's docstring)."""
        return {
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "R": self.R.tolist(),
            "t": self.t.tolist(),
            "width": self.width,
            "height": self.height,
        }


def _plain(value: object) -> object:
    """A numpy number as the Python one (``np.float32(500)`` -> ``500.0``), so sizes computed with
    numpy pass the checks; anything else unchanged, for the checks to refuse."""
    return value.item() if isinstance(value, np.generic) and value.dtype.kind in "iuf" else value


def _shaped(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    array = as_numbers(name, value)
    if array.shape != shape:
        raise ShapeError(f"{name} must have shape {shape}, got {array.shape}")
    return array


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The extrinsics ``(R (3, 3), t (3,))`` of a camera at ``eye`` looking at ``target``
    (world, metres), with the world direction ``up`` pointing up in the image (its projection
    on the image plane is -y, as y points down).

    Raises:
        ConfigError: ``eye`` equals ``target``, or ``up`` is parallel to the viewing direction.
    """
    eye = check_finite("eye", _shaped("eye", eye, (3,)))
    target = check_finite("target", _shaped("target", target, (3,)))
    up = check_finite("up", _shaped("up", up, (3,)))
    forward = target - eye
    if np.linalg.norm(forward) == 0.0:
        raise ConfigError("look_at: eye and target must differ")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) <= 1e-9 * np.linalg.norm(up):  # also when up is zero
        raise ConfigError("look_at: up must be a non-zero vector not parallel to the viewing direction")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)  # x cross y = z, so y = z cross x
    rotation = np.stack([right, down, forward])
    return rotation, -rotation @ eye


def save_camera(camera: Camera, path: str | Path) -> None:
    """Write ``camera`` as a JSON camera file, atomically (floats written exactly: ``repr``)."""
    with atomic_write(path, "w") as handle:
        json.dump(camera.to_dict(), handle, indent=2)
        handle.write("\n")


def load_camera(path: str | Path) -> Camera:
    """Read a JSON camera file (see the module's docstring).

    Raises:
        InputFileError: one line naming the file and the problem: missing, not JSON, not an
            object, a key missing or unknown, a value of the wrong type or shape, NaN or inf, a
            non-positive focal length or image size, an R that is not a rotation.
    """
    try:
        data = read_json(path, "camera file")
    except DatasetError as error:
        raise InputFileError(str(error)) from None
    if not isinstance(data, dict):
        raise InputFileError(f"camera file {path} must hold a JSON object, got {type(data).__name__}")
    missing = [key for key in CAMERA_KEYS if key not in data]
    unknown = sorted(set(data) - set(CAMERA_KEYS))
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown key(s) {', '.join(unknown)}"
        raise InputFileError(f"camera file {path}: {problem} (a camera has {', '.join(CAMERA_KEYS)})")
    try:
        return Camera(**data)
    except (ConfigError, ShapeError) as error:
        raise InputFileError(f"camera file {path}: {error}") from None
