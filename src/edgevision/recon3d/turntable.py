"""Turntable pictures of a mesh: views around its vertical axis, shaded, side by side; and the
error colours of the picture of a result beside its ground truth."""

from __future__ import annotations

import math

import matplotlib
import numpy as np

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d._checks import as_numbers, as_rows, check_finite
from edgevision.recon3d.camera import Camera, look_at
from edgevision.recon3d.render import render
from edgevision.recon3d.shading import shade, vertex_normals
from edgevision.validation import check_integer, check_number

UP = np.array([0.0, 1.0, 0.0])  # the body's canonical frame (MakeHuman's): y up
FIELD_OF_VIEW = math.radians(30.0)  # vertical; a mild perspective, as a portrait lens
MARGIN = 0.9  # of each half image the mesh may fill
MESH_GREY = 200.0  # the mesh's colour when none is given, a light grey on the white background


def turntable_cameras(
    vertices: np.ndarray, *, views: int = 4, size: tuple[int, int] = (256, 512)
) -> list[Camera]:
    """``views`` cameras of ``size`` (width, height) pixels around the vertical (y) axis through
    the centre of the bounding box of ``vertices`` (V, 3), level with it, looking at it; the
    first from +z, then turning by 2 pi / views about +y (counter-clockwise seen from above). The
    distance, the same in every view, is the least that keeps the whole mesh inside each view's
    margin."""
    vertices = as_rows("vertices", vertices, 3)
    if not len(vertices):
        raise ConfigError("turntable of an empty mesh: vertices has no rows")
    views = check_integer("views", views, 1, 64)
    if not isinstance(size, tuple | list) or len(size) != 2:
        raise ConfigError(f"size must be (width, height), got {size}")
    width, height = (check_integer(name, value, 8, 4096) for name, value in zip(("width", "height"), size))
    center = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    focal = height / 2 / math.tan(FIELD_OF_VIEW / 2)
    rotations = []
    for view in range(views):
        angle = 2 * math.pi * view / views
        rotations.append(look_at(center + [math.sin(angle), 0.0, math.cos(angle)], center, UP)[0])
    # At distance d a vertex is at p + (0, 0, d) in the camera frame, p = R (x - centre): the
    # smallest d that puts every vertex inside the margin of every view, and in front.
    relative = np.stack([(vertices - center) @ rotation.T for rotation in rotations])
    half = MARGIN * np.array([width, height]) / 2
    needed = focal * np.abs(relative[..., :2]) / half - relative[..., 2:]
    scale = max(np.abs(relative).max(), 1e-9)
    distance = max(needed.max(), (-relative[..., 2]).max() + 0.1 * scale)
    principal = ((width - 1) / 2, (height - 1) / 2)
    return [
        Camera(focal, focal, *principal, rotation, [0.0, 0.0, distance] - rotation @ center, width, height)
        for rotation in rotations
    ]


def turntable_image(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    colors: np.ndarray | None = None,
    views: int = 4,
    size: tuple[int, int] = (256, 512),
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """The mesh (vertices (V, 3), faces (F, 3)) seen by :func:`turntable_cameras`, lit from each
    camera (Lambert, smooth vertex normals), side by side: (height, width * views, 3) uint8.
    ``colors`` (V, 3) in [0, 255] (BGR to write with ``write_image``), else a light grey."""
    vertices = as_rows("vertices", vertices, 3)
    base = np.full((len(vertices), 3), MESH_GREY) if colors is None else as_rows("colors", colors, 3)
    if len(base) != len(vertices):
        raise ShapeError(f"colors must have one row per vertex ({len(vertices)}), got {len(base)}")
    cameras = turntable_cameras(vertices, views=views, size=size)
    normals = vertex_normals(vertices, faces)
    pictures = []
    for camera in cameras:
        lit = base * shade(normals, -camera.R[2])[:, None]  # a headlight: along the optical axis
        pictures.append(render(vertices, faces, camera, vertex_colors=lit, background=background).image)
    return np.concatenate(pictures, axis=1)


def error_colormap(values_mm: np.ndarray, vmax: float, *, colormap: str = "viridis") -> np.ndarray:
    """(N, 3) uint8 BGR colours of per-vertex errors ``values_mm`` (N,) >= 0, millimetres: 0 at
    the colormap's low end, ``vmax`` and above at its high end (matplotlib's ``colormap``)."""
    values = check_finite("values_mm", as_numbers("values_mm", values_mm).reshape(-1))
    if values.size and values.min() < 0:
        raise ConfigError(f"values_mm are errors, >= 0; got {values.min():g}")
    vmax = check_number("vmax", vmax, 0.0, math.inf, low_open=True)
    if colormap not in matplotlib.colormaps:
        raise ConfigError(f"unknown matplotlib colormap {colormap!r}")
    rgba = matplotlib.colormaps[colormap](np.clip(values / vmax, 0.0, 1.0))
    return np.rint(rgba[:, 2::-1] * 255).astype(np.uint8)
