"""A software z-buffer rasteriser in numpy: a triangle mesh seen by a :class:`Camera`, headless,
on the CPU, the ground truth of the synthetic benchmark (silhouettes, depth, colour images).

Conventions: a pixel is covered by a triangle when its centre (integer coordinates, the
convention of :mod:`edgevision.recon3d.camera`) lies inside the projected triangle or on its
edge. Edges count as inside, and each edge's function is computed from its two vertices in one
fixed order (by vertex index), so the two triangles sharing an edge get exactly opposite values
there: a closed mesh renders without cracks. The nearest surface wins (smaller depth); a tie goes
to the lower face index. Depth and barycentrics are perspective-correct: depth is the camera z of
the surface point on the pixel's ray, and the barycentrics are those of that 3D point in its
triangle, so they interpolate any attribute affine on the triangle exactly. No clipping: every
vertex of a face must be in front of the camera. No back-face culling.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d._checks import as_faces, as_numbers, as_rows, check_finite
from edgevision.recon3d.camera import Camera

# Candidate (triangle, pixel) pairs tested at once: bounds the memory of a chunk (about 100 bytes
# a candidate, so ~50 MB) while keeping numpy's per-call overhead small.
CHUNK_CANDIDATES = 1 << 19
REMAP_ROW = 4096  # texture lookups per row of cv2.remap's maps


@dataclass(frozen=True, eq=False)
class RenderResult:
    """What :func:`render` sees at each pixel of an ``H x W`` image.

    Attributes:
        mask: (H, W) bool, covered by the mesh.
        depth: (H, W) float64, metres along the optical axis; inf where empty.
        face_index: (H, W) int64, the visible face; -1 where empty.
        barycentrics: (H, W, 3) float64, of the visible surface point in its face (perspective
            correct, summing to 1); 0 where empty.
        image: (H, W, 3) uint8, the interpolated vertex colours or texture, the background where
            empty.
    """

    mask: np.ndarray
    depth: np.ndarray
    face_index: np.ndarray
    barycentrics: np.ndarray
    image: np.ndarray


def render(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    *,
    vertex_colors: np.ndarray | None = None,
    uv: np.ndarray | None = None,
    texture: np.ndarray | None = None,
    background: tuple[int, int, int] = (0, 0, 0),
) -> RenderResult:
    """Render a triangle mesh: vertices (V, 3) world metres, faces (F, 3) vertex indices.

    Colour (channels in the order given; the project's images are BGR): ``vertex_colors``
    (V, 3) in [0, 255], interpolated; or ``uv`` (F, 3, 2), the texture coordinates of each face
    corner in [0, 1] (v up, as in OBJ files) with ``texture`` (Ht, Wt, 3) uint8, sampled
    bilinearly; or neither: the mesh in white. Every input is checked before any work.

    Raises:
        ShapeError: an array of the wrong shape or type, a face index out of range.
        ConfigError: NaN or inf, a vertex of a face behind the camera, colours and a texture both.
    """
    vertices = as_rows("vertices", vertices, 3)
    faces = as_faces(faces, len(vertices))
    corner_colors = _corner_colors(faces, len(vertices), vertex_colors, uv, texture)
    background_color = _check_color("background", background)
    pixels, depth = camera.project(vertices)
    used = np.unique(faces)
    if used.size and depth[used].min() <= 0.0:
        behind = int((depth[used] <= 0.0).sum())
        raise ConfigError(
            f"{behind} vertices of the mesh are behind the camera (depth <= 0); render does not clip"
        )

    z_buffer, face_index, barycentrics = rasterize(pixels, depth, faces, camera.width, camera.height)
    mask = face_index >= 0
    image = np.empty((camera.height, camera.width, 3), np.uint8)
    image[:] = background_color
    if corner_colors is None:
        image[mask] = 255
    elif texture is None:
        image[mask] = np.clip(np.rint(_interpolate(corner_colors, face_index, barycentrics, mask)), 0, 255)
    else:
        image[mask] = _sample(texture, _interpolate(corner_colors, face_index, barycentrics, mask))
    return RenderResult(mask, z_buffer, face_index, barycentrics, image)


def rasterize(
    pixels: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer the triangles ``faces`` (F, 3) whose vertices project to ``pixels`` (V, 2) at
    ``depth`` (V,) > 0: the (H, W) depth (inf where empty), (H, W) face index (-1) and (H, W, 3)
    perspective-correct barycentrics (0). Inputs are trusted (:func:`render` checks them)."""
    z_buffer = np.full(height * width, np.inf)
    face_index = np.full(height * width, -1, np.int64)
    barycentrics = np.zeros((height * width, 3))
    corners = pixels[faces]  # (F, 3, 2)
    side, other = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area2 = side[:, 0] * other[:, 1] - side[:, 1] * other[:, 0]  # twice the signed area
    # Pixel centres j with min u <= j <= max u; clipped as floats first, as a vertex near the
    # camera plane projects far outside the int range.
    low = np.ceil(np.clip(corners.min(axis=1), -1, [width, height])).astype(np.int64)
    high = np.floor(np.clip(corners.max(axis=1), -1, [width, height])).astype(np.int64)
    low = np.maximum(low, 0)
    high = np.minimum(high, [width - 1, height - 1])
    span = np.maximum(high - low + 1, 0)
    candidates = span[:, 0] * span[:, 1]
    drawn = np.flatnonzero((candidates > 0) & (area2 != 0.0))

    coefficients = _edge_coefficients(pixels, faces, np.sign(area2))
    for chunk in _chunks(drawn, candidates[drawn]):
        count = candidates[chunk]
        triangle = np.repeat(chunk, count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        columns = span[triangle, 0]
        u = low[triangle, 0] + offset % columns
        v = low[triangle, 1] + offset // columns
        # Separate ufuncs, not a matrix product: each product and sum rounded the same way in
        # every triangle (no fused multiply-add on some elements), which the no-crack rule needs.
        a, b, c = coefficients[triangle].transpose(2, 0, 1)
        weights = a * u[:, None] + b * v[:, None] + c
        total = weights.sum(axis=1)  # twice the area, up to rounding: 0 only for a sliver
        inside = (weights >= 0.0).all(axis=1) & (total != 0.0)
        triangle, u, v = triangle[inside], u[inside], v[inside]
        weights = weights[inside] / total[inside, None]  # screen-space barycentrics

        # Perspective-correct interpolation: 1/z is affine in screen space.
        inverse_depth = weights / depth[faces[triangle]]
        fragment_depth = 1.0 / inverse_depth.sum(axis=1)
        pixel = v * width + u
        order = np.lexsort((fragment_depth, pixel))  # stable: the lower face first on a tie
        first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]]
        nearer = first[fragment_depth[first] < z_buffer[pixel[first]]]
        target = pixel[nearer]
        z_buffer[target] = fragment_depth[nearer]
        face_index[target] = triangle[nearer]
        barycentrics[target] = inverse_depth[nearer] * fragment_depth[nearer, None]
    return (
        z_buffer.reshape(height, width),
        face_index.reshape(height, width),
        barycentrics.reshape(height, width, 3),
    )


def _edge_coefficients(pixels: np.ndarray, faces: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """(F, 3, 3): for the edge opposite each corner, ``(a, b, c)`` with ``a u + b v + c`` twice
    the signed area of (edge, pixel), >= 0 on the triangle's side (``orientation``: the sign of
    its area). The line is written from its lower vertex index, so the two triangles sharing an
    edge get bitwise opposite coefficients (a sign change is exact)."""
    coefficients = np.empty((len(faces), 3, 3))
    for corner in range(3):
        first, second = faces[:, (corner + 1) % 3], faces[:, (corner + 2) % 3]
        swap = first > second
        start = pixels[np.where(swap, second, first)]
        direction = pixels[np.where(swap, first, second)] - start
        sign = np.where(swap, -orientation, orientation)[:, None]
        line = [
            -direction[:, 1],
            direction[:, 0],
            direction[:, 1] * start[:, 0] - direction[:, 0] * start[:, 1],
        ]
        coefficients[:, corner] = sign * np.stack(line, axis=1)
    return coefficients


def _chunks(triangles: np.ndarray, candidates: np.ndarray) -> list[np.ndarray]:
    """Split ``triangles`` (in order) into runs of about :data:`CHUNK_CANDIDATES` candidates; a
    triangle larger than that is a run of its own."""
    bounds = np.searchsorted(
        np.cumsum(candidates), np.arange(CHUNK_CANDIDATES, candidates.sum(), CHUNK_CANDIDATES)
    )
    return [run for run in np.split(triangles, np.unique(bounds)) if run.size]


def _interpolate(
    corners: np.ndarray, face_index: np.ndarray, barycentrics: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Per covered pixel (row-major), the barycentric mix of its face's corner values (F, 3, C)."""
    return np.einsum("nk,nkc->nc", barycentrics[mask], corners[face_index[mask]])


def _sample(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture colours (N, 3) at ``uv`` (N, 2): u right, v up, texel centres at
    ``(i + 0.5) / size``."""
    height, width = texture.shape[:2]
    count = len(uv)
    # cv2.remap takes maps under 32767 (SHRT_MAX) columns: the lookups go as rows of REMAP_ROW.
    maps = np.zeros((2, -(-count // REMAP_ROW) * REMAP_ROW), np.float32)
    maps[0, :count] = uv[:, 0] * width - 0.5
    maps[1, :count] = (1.0 - uv[:, 1]) * height - 0.5
    if not count:
        return np.zeros((0, 3), np.uint8)
    map_x, map_y = maps.reshape(2, -1, REMAP_ROW)
    sampled = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(-1, 3)[:count]


def _corner_colors(
    faces: np.ndarray,
    vertex_count: int,
    vertex_colors: np.ndarray | None,
    uv: np.ndarray | None,
    texture: np.ndarray | None,
) -> np.ndarray | None:
    """The per-corner values (F, 3, C) the image interpolates: colours, or texture coordinates."""
    if vertex_colors is not None and (uv is not None or texture is not None):
        raise ConfigError("give vertex_colors or uv with texture, not both")
    if vertex_colors is not None:
        colors = as_rows("vertex_colors", vertex_colors, 3)
        if len(colors) != vertex_count:
            raise ShapeError(
                f"vertex_colors must have one row per vertex ({vertex_count}), got {len(colors)}"
            )
        return colors[faces]
    if (uv is None) != (texture is None):
        raise ConfigError("uv and texture go together: give both or neither")
    if uv is None:
        return None
    texture = np.asarray(texture)
    if texture.ndim != 3 or texture.shape[2] != 3 or texture.dtype != np.uint8 or not texture.size:
        raise ShapeError(
            f"texture must be an (H, W, 3) uint8 image, got shape {texture.shape} of {texture.dtype}"
        )
    corners = check_finite("uv", as_numbers("uv", uv))
    if corners.shape != (len(faces), 3, 2):
        raise ShapeError(f"uv must be (F, 3, 2), a (u, v) per face corner, got {corners.shape}")
    return corners


def _check_color(name: str, color: tuple[int, int, int]) -> np.ndarray:
    value = check_finite(name, as_numbers(name, color))
    if value.shape != (3,) or value.min() < 0 or value.max() > 255:
        raise ConfigError(f"{name} must be 3 channel values in [0, 255], got {color}")
    return value.astype(np.uint8)
