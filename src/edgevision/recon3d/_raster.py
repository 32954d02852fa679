"""Interim silhouettes until ``recon3d.render`` lands: the union of a mesh's projected
triangles filled with OpenCV (one convex fill per triangle; ``cv2.fillPoly`` of them all would
fill by the even-odd rule and leave overlaps empty), and its boundary pixels."""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4  # fixed-point bits: triangle corners at 1/16 pixel


def silhouette_mask(pixels: np.ndarray, faces: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) bool: the pixels covered by the triangles ``faces`` (F, 3) of the projected
    vertices ``pixels`` (V, 2) ``(x, y)``, pixel centres at integers."""
    mask = np.zeros((height, width), np.uint8)
    corners = np.rint(pixels * (1 << _SHIFT)).astype(np.int32)[faces]
    for triangle in corners:
        cv2.fillConvexPoly(mask, triangle, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask.astype(bool)


def silhouette_boundary(mask: np.ndarray) -> np.ndarray:
    """(N, 2) int64 ``(x, y)``: the mask pixels with a 4-neighbour in the image outside the mask."""
    padded = np.pad(~mask, 1, constant_values=False)
    beside = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    rows, columns = np.nonzero(mask & beside)
    return np.column_stack([columns, rows]).astype(np.int64)
