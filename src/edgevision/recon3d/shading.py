"""Surface normals of a triangle mesh and Lambert shading, for pictures of a reconstruction."""

from __future__ import annotations

import numpy as np

from edgevision.errors import ConfigError
from edgevision.recon3d._checks import as_faces, as_rows
from edgevision.validation import check_number


def face_normals(vertices: np.ndarray, faces: np.ndarray, *, unit: bool = True) -> np.ndarray:
    """(F, 3) normals of the faces (F, 3) of ``vertices`` (V, 3), by the right-hand rule on the
    vertex order (counter-clockwise seen from the front). ``unit=False`` keeps their length:
    twice the face's area. A zero-area face's normal is 0."""
    vertices = as_rows("vertices", vertices, 3)
    corners = vertices[as_faces(faces, len(vertices))]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return _unit(normals) if unit else normals


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals at the vertices: the area-weighted mean of their faces' normals; 0 at
    a vertex in no face."""
    weighted = face_normals(vertices, faces, unit=False)  # checks the inputs
    normals = np.zeros((len(vertices), 3))
    for corner in range(3):
        np.add.at(normals, faces[:, corner], weighted)
    return _unit(normals)


def shade(normals: np.ndarray, light: np.ndarray, *, ambient: float = 0.3) -> np.ndarray:
    """Lambert brightness (N,) in [ambient, 1] of surfaces with unit ``normals`` (N, 3) lit from
    the direction ``light`` (3,) (towards the light; any length): ``ambient + (1 - ambient)
    * max(0, n . l)``. Surfaces facing away get the ambient light only."""
    normals = as_rows("normals", normals, 3)
    light = as_rows("light", np.reshape(light, (1, -1)), 3)[0]
    if not np.linalg.norm(light):
        raise ConfigError("light must be a non-zero direction, got (0, 0, 0)")
    ambient = check_number("ambient", ambient, 0.0, 1.0)
    cosine = np.clip(normals @ (light / np.linalg.norm(light)), 0.0, None)
    return ambient + (1.0 - ambient) * cosine


def _unit(vectors: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)
