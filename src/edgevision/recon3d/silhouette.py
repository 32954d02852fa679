"""Silhouettes: the boundary pixels the consensus step back-projects to rays (Alldieck et al.
2018, Sec. 3.2)."""

from __future__ import annotations

import cv2
import numpy as np

from edgevision.errors import ShapeError


def silhouette_boundary(mask: np.ndarray, *, holes: bool = True) -> np.ndarray:
    """The boundary pixels of a silhouette ``mask`` (H, W) bool, as (N, 2) int64 pixel
    coordinates ``(x, y)`` = (column, row), row-major order: the mask pixels with a 4-neighbour
    in the image that is not in the mask. These are the border points OpenCV's
    ``findContours`` traces (8-connected foreground), outer contours and hole contours alike.

    Pixels on the image's edge whose only background neighbour would lie outside the frame are
    left out: there the frame cuts the person, and the ray is not tangent to the body. With
    ``holes=False`` only the pixels next to the outer background (4-connected to the image's
    edge) are kept, dropping the contours of enclosed holes (e.g. an arm touching the hip)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ShapeError(f"mask must be an (H, W) bool array, got shape {mask.shape} of {mask.dtype}")
    background = ~mask
    if not holes:
        _, labels = cv2.connectedComponents(background.astype(np.uint8), connectivity=4)
        rim = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        rim_background = np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])
        background &= np.isin(labels, rim[rim_background])
    # Outside the frame counts as foreground, so the frame's edge is no boundary.
    padded = np.pad(background, 1, constant_values=False)
    beside = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    rows, columns = np.nonzero(mask & beside)
    return np.column_stack([columns, rows]).astype(np.int64)
