"""The texture map stitched from the frames (Alldieck et al. 2018, Sec. 3.4: per texel, the median
colour over the views that see it most head-on).

1. The atlas: the UV triangles rasterised into an ``S x S`` texel grid
   (:func:`edgevision.recon3d.render.rasterize` in UV space, where the barycentrics are affine):
   each texel inside a triangle gets that face and its barycentrics. Texel ``(row i, column j)``
   is centred at ``uv = ((j + 0.5) / S, 1 - (i + 0.5) / S)`` (v up, as the renderer samples).
2. Per frame, each texel's point on the posed mesh and its normal (the face's vertex normals,
   interpolated). The texel is *seen* when it faces the camera and the four pixels its colour is
   read from (bilinearly) are all in the person's mask and all show (by the mesh's z-buffer) a
   surface point within ``surface_tolerance`` of the texel's tangent plane: nothing nearer hides
   it, and it is not at an outline where the pixels mix it with the background or with another
   surface. The tangent plane, not the depth: at a grazing angle the depth changes by
   centimetres from one pixel to the next on the texel's own surface.
3. Its colour: over the ``top_k`` frames that see it most head-on (largest cosine between the
   normal and the direction to the camera), the per-channel weighted median, weighted by that
   cosine: a frontal view outvotes grazing ones, and an outlier frame (motion, a wrong pose) is
   ignored rather than averaged in.
4. Texels seen in no frame (in the atlas, and the unused grid between the charts) take the colour
   of the nearest seen texel in the grid (an exact Euclidean distance transform). Not cv2.inpaint:
   its diffusion is slow on the ~40% of a body's atlas that lies between charts, and the point
   of filling there is only that bilinear lookups near a chart's edge read no black.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.ndimage import distance_transform_edt

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d._checks import as_faces, as_rows
from edgevision.recon3d.camera import Camera
from edgevision.recon3d.render import rasterize, render
from edgevision.recon3d.shading import vertex_normals
from edgevision.validation import check_integer, check_number

TOP_K = 5  # views per texel in the median
# Views more grazing than this (about 75 degrees) do not count: the four pixels a colour is read
# from then span centimetres of curved surface, and the tangent-plane test below lets a nearby
# other surface through (measured on the painted body: most wrong texels came from such views).
MIN_COSINE = 0.25
# Metres the surface a pixel shows may lie off a texel's tangent plane and still count as the
# texel's own: a body's curvature across a grazing pixel footprint (~1 cm at 320x240, twice
# that at 60 degrees) bends a 10 cm-radius limb ~5 mm away from the plane.
SURFACE_TOLERANCE = 0.02


@dataclass(frozen=True, eq=False)
class AtlasTexels:
    """The texels inside the UV atlas, ``N`` of them, row-major: ``rows`` ``(N,)`` and
    ``columns`` ``(N,)`` in the ``size x size`` grid, ``faces`` ``(N,)`` the face each lies in,
    ``barycentrics`` ``(N, 3)`` its position in that face (the face's corner order)."""

    size: int
    rows: np.ndarray
    columns: np.ndarray
    faces: np.ndarray
    barycentrics: np.ndarray


@dataclass(frozen=True, eq=False)
class StitchedTexture:
    """texture: ``(S, S, 3)`` uint8, the images' channel order; seen: ``(S, S)`` bool, the texels
    some frame saw (the rest are filled); best_cosine: ``(S, S)`` the cosine of the most head-on
    view of each texel, the weight of its best view (0 where unseen)."""

    texture: np.ndarray
    seen: np.ndarray
    best_cosine: np.ndarray


def atlas_texels(uvs: np.ndarray, face_uvs: np.ndarray, size: int) -> AtlasTexels:
    """Rasterise the UV triangles ``face_uvs`` (F, 3) of the texture coordinates ``uvs`` (U, 2)
    (in [0, 1], v up) into a ``size x size`` grid; a texel belongs to the triangle containing its
    centre (the lower face index where triangles overlap)."""
    check_integer("size", size, 2)
    uvs = as_rows("uvs", uvs, 2)
    face_uvs = as_faces(face_uvs, len(uvs))
    texel_xy = np.column_stack([uvs[:, 0] * size - 0.5, (1.0 - uvs[:, 1]) * size - 0.5])
    _, faces, barycentrics = rasterize(texel_xy, np.ones(len(uvs)), face_uvs, size, size)
    rows, columns = np.nonzero(faces >= 0)
    return AtlasTexels(size, rows, columns, faces[rows, columns], barycentrics[rows, columns])


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The lower weighted median of ``values`` (N, K, C) over K, per channel, with ``weights``
    (N, K) >= 0: the smallest value whose cumulative weight (of it and all values below it)
    reaches half the total, a minimiser of ``sum_k w_k |v_k - x|``. Rows of zero total weight
    give their smallest value. K is small (the top views): K passes, no sort."""
    weight_up_to = np.zeros_like(values, dtype=np.float64)
    for k in range(values.shape[1]):
        weight_up_to += (values[:, k : k + 1] <= values) * weights[:, k : k + 1, None]
    reached = 2.0 * weight_up_to >= weights.sum(axis=1)[:, None, None]
    return np.where(reached, values, np.inf).min(axis=1)


def build_texture(*args: Any, **kwargs: Any) -> np.ndarray:
    """``stitch_texture(...).texture``: the ``(size, size, 3)`` uint8 texture alone; the same
    arguments as :func:`stitch_texture`, ``(body_vertices_per_frame, faces, face_uvs, uvs,
    cameras, images, masks, size=512)``."""
    return stitch_texture(*args, **kwargs).texture


def stitch_texture(
    body_vertices_per_frame: Sequence[np.ndarray] | np.ndarray,
    faces: np.ndarray,
    face_uvs: np.ndarray,
    uvs: np.ndarray,
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    size: int = 512,
    *,
    top_k: int = TOP_K,
    surface_tolerance: float = SURFACE_TOLERANCE,
    min_cosine: float = MIN_COSINE,
) -> StitchedTexture:
    """Stitch the texture of a body from its frames (see the module docstring).

    Args:
        body_vertices_per_frame: T arrays ``(V, 3)``, the posed mesh in each frame, metres.
        faces: ``(F, 3)`` vertex indices; face_uvs: ``(F, 3)`` indices into ``uvs`` ``(U, 2)``,
            the texture coordinates of each face's corners, in [0, 1], v up.
        cameras: T cameras; images: T ``(H, W, 3)`` uint8, each its camera's size; masks: T
            ``(H, W)`` bool, the person's pixels.
        size: texels along each side of the texture.
        top_k: the most head-on views whose weighted median is a texel's colour.
        surface_tolerance: metres, see the module docstring.
        min_cosine: views of a texel at a smaller cosine (more grazing) are not used.

    Raises:
        ShapeError, ConfigError: one line, before any work: counts that differ, arrays of the
            wrong shape or type, NaN or inf; no texel seen in any frame.
    """
    frames = _check_frames(body_vertices_per_frame, faces, face_uvs, uvs, cameras, images, masks)
    check_integer("top_k", top_k, 1)
    check_number("min_cosine", min_cosine, 0.0, 1.0, high_open=True)
    check_number("surface_tolerance", surface_tolerance, 0.0, float("inf"), low_open=True, high_open=True)
    atlas = atlas_texels(uvs, face_uvs, size)
    faces = np.asarray(faces, dtype=np.int64)
    best_cosine = np.full((len(atlas.faces), top_k), -1.0)  # -1: an empty slot
    best_colour = np.zeros((len(atlas.faces), top_k, 3))
    texel_mix = sparse.csr_matrix(
        (atlas.barycentrics.ravel(), faces[atlas.faces].ravel(), np.arange(0, 3 * len(atlas.faces) + 1, 3)),
        shape=(len(atlas.faces), len(frames[0][0])),
    )
    for vertices, camera, image, mask in zip(*frames, strict=True):
        texels, cosine, colour = _frame_view(
            vertices, faces, texel_mix, camera, image, mask, surface_tolerance, min_cosine
        )
        # Keep the top_k cosines so far: the new view replaces the worst kept one if better.
        worst = best_cosine[texels].argmin(axis=1)
        better = cosine > best_cosine[texels, worst]
        best_cosine[texels[better], worst[better]] = cosine[better]
        best_colour[texels[better], worst[better]] = colour[better]
    weights = np.clip(best_cosine, 0.0, None)
    seen = weights.sum(axis=1) > 0
    if not seen.any():
        raise ConfigError("no texel of the atlas is seen in any frame: check the masks, cameras and poses")

    texture = np.zeros((size, size, 3), np.uint8)
    texture[atlas.rows[seen], atlas.columns[seen]] = np.clip(
        np.rint(weighted_median(best_colour[seen], weights[seen])), 0, 255
    )
    seen_grid = np.zeros((size, size), bool)
    seen_grid[atlas.rows[seen], atlas.columns[seen]] = True
    nearest_rows, nearest_columns = distance_transform_edt(
        ~seen_grid, return_distances=False, return_indices=True
    )
    cosine_grid = np.zeros((size, size))
    cosine_grid[atlas.rows, atlas.columns] = weights.max(axis=1)
    return StitchedTexture(texture[nearest_rows, nearest_columns], seen_grid, cosine_grid)


def _frame_view(
    vertices: np.ndarray,
    faces: np.ndarray,
    texel_mix: sparse.csr_matrix,
    camera: Camera,
    image: np.ndarray,
    mask: np.ndarray,
    surface_tolerance: float,
    min_cosine: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's view of the N texels, whose values ``texel_mix`` (N, V) mixes from the
    vertices' (their barycentrics): the ``(M,)`` indices of the texels the frame sees, the
    ``(M,)`` cosine of the angle between each one's normal and its direction to the camera, and
    ``(M, 3)`` its bilinear colour in the image."""
    points = texel_mix @ vertices
    normals = texel_mix @ vertex_normals(vertices, faces)
    towards = camera.center - points
    # einsum, not .sum(axis=1): numpy's reductions over a length-3 axis are several times slower
    lengths = np.sqrt(np.einsum("nc,nc->n", normals, normals) * np.einsum("nc,nc->n", towards, towards))
    cosine = np.einsum("nc,nc->n", normals, towards) / np.maximum(lengths, 1e-12)
    pixels, depth = camera.project(points)
    # Clipped before the floor: a point near the camera plane projects far outside the int
    # range, one behind it to inf or NaN (refused by its depth).
    limit = [camera.width - 1, camera.height - 1]
    low = np.floor(np.clip(np.nan_to_num(pixels, nan=-1.0), -1.0, limit))
    inside = (low[:, 0] >= 0) & (low[:, 1] >= 0) & (low[:, 0] < limit[0]) & (low[:, 1] < limit[1])
    candidates = np.flatnonzero(inside & (depth > 0) & (cosine > min_cosine))
    low, fraction = low[candidates].astype(np.int64), (pixels - low)[candidates]
    unit_normals = normals[candidates] / np.linalg.norm(normals[candidates], axis=1, keepdims=True)
    offsets = np.einsum("nc,nc->n", unit_normals, points[candidates])  # each tangent plane's

    surface, covered = _surface_points(vertices, faces, camera)
    seen = np.ones(len(candidates), bool)
    colour = np.zeros((len(candidates), 3))
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        rows, columns = low[:, 1] + dy, low[:, 0] + dx
        # The surface the pixel shows lies on the texel's tangent plane: not in front of it (an
        # occluder), not behind it (the texel is at an outline, the pixel shows what is behind).
        off_plane = np.abs(np.einsum("nc,nc->n", unit_normals, surface[rows, columns]) - offsets)
        seen &= mask[rows, columns] & covered[rows, columns] & (off_plane <= surface_tolerance)
        weight = np.abs(1 - dx - fraction[:, 0]) * np.abs(1 - dy - fraction[:, 1])
        colour += weight[:, None] * image[rows, columns]
    return candidates[seen], cosine[candidates[seen]], colour[seen]


def _surface_points(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """The ``(H, W, 3)`` world point of the mesh each pixel centre shows (its z-buffer depth on
    the pixel's ray; 0 where empty) and the ``(H, W)`` bool coverage."""
    z_buffer = render(vertices, faces, camera).depth
    covered = np.isfinite(z_buffer)
    depth = np.where(covered, z_buffer, 0.0)
    rows, columns = np.mgrid[0 : camera.height, 0 : camera.width]
    in_camera = np.stack(
        [(columns - camera.cx) / camera.fx * depth, (rows - camera.cy) / camera.fy * depth, depth], axis=-1
    )
    return (in_camera - camera.t) @ camera.R, covered  # R^T (x - t), row by row


def _check_frames(
    body_vertices_per_frame: Sequence[np.ndarray] | np.ndarray,
    faces: np.ndarray,
    face_uvs: np.ndarray,
    uvs: np.ndarray,
    cameras: Sequence[Camera],
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
) -> tuple[list[np.ndarray], list[Camera], list[np.ndarray], list[np.ndarray]]:
    """The per-frame inputs, checked (one-line errors) and as arrays."""
    counts = {"vertex sets": len(body_vertices_per_frame), "cameras": len(cameras)}
    counts |= {"images": len(images), "masks": len(masks)}
    if len(set(counts.values())) != 1 or not counts["cameras"]:
        listed = ", ".join(f"{count} {name}" for name, count in counts.items())
        raise ConfigError(
            f"need one posed mesh, camera, image and mask per frame, at least one; got {listed}"
        )
    all_vertices = [as_rows(f"vertices of frame {t}", v, 3) for t, v in enumerate(body_vertices_per_frame)]
    if len({len(v) for v in all_vertices}) != 1:
        raise ShapeError("every frame's mesh must have the same vertices, got different counts")
    as_faces(faces, len(all_vertices[0]))
    if np.shape(face_uvs) != np.shape(faces):
        raise ShapeError(
            f"face_uvs must be one UV triangle per face, {np.shape(faces)}, got {np.shape(face_uvs)}"
        )
    for t, (camera, image, mask) in enumerate(zip(cameras, images, masks, strict=True)):
        if not isinstance(camera, Camera):
            raise ShapeError(f"camera {t} must be a Camera, got {type(camera).__name__}")
        size = (camera.height, camera.width)
        image, mask = np.asarray(image), np.asarray(mask)
        if image.shape != (*size, 3) or image.dtype != np.uint8:
            raise ShapeError(
                f"image {t} must be {size[0]}x{size[1]}x3 uint8 (its camera's size), "
                f"got {image.shape} {image.dtype}"
            )
        if mask.shape != size or mask.dtype != bool:
            raise ShapeError(
                f"mask {t} must be an {size[0]}x{size[1]} bool array, got {mask.shape} {mask.dtype}"
            )
    return all_vertices, list(cameras), [np.asarray(i) for i in images], [np.asarray(m) for m in masks]
