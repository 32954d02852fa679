"""Silhouette boundary pixels against OpenCV's border following and the 4-neighbour rule; the edge
points on a straight outline lie on it on average, where the pixel centres lie half a pixel in."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgevision.errors import ShapeError
from edgevision.recon3d.silhouette import silhouette_boundary, silhouette_edge_points


def person_like_mask() -> np.ndarray:
    """A blob with a hole (an arm touching the hip), a one-pixel-wide limb and a diagonal-only
    link, away from the image's edge."""
    mask = np.zeros((60, 80), np.uint8)
    cv2.ellipse(mask, (30, 30), (18, 24), 0, 0, 360, 1, -1)
    cv2.circle(mask, (30, 30), 6, 0, -1)  # the hole
    mask[10, 48:70] = 1  # a one-pixel-wide limb
    mask[40, 60] = mask[41, 61] = 1  # linked by a corner only
    return mask.astype(bool)


def as_set(pixels: np.ndarray) -> set[tuple[int, int]]:
    return {(int(x), int(y)) for x, y in pixels}


def four_neighbour_rule(mask: np.ndarray) -> set[tuple[int, int]]:
    """Brute force: mask pixels with a 4-neighbour inside the image that is not in the mask."""
    height, width = mask.shape
    found = set()
    for y, x in zip(*np.nonzero(mask)):
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            if 0 <= y + dy < height and 0 <= x + dx < width and not mask[y + dy, x + dx]:
                found.add((int(x), int(y)))
    return found


def test_boundary_is_every_contour_opencv_traces() -> None:
    mask = person_like_mask()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    traced = {(int(x), int(y)) for contour in contours for x, y in contour[:, 0]}
    boundary = silhouette_boundary(mask)
    assert boundary.dtype == np.int64 and boundary.shape[1] == 2
    assert len(boundary) == len(as_set(boundary))  # each pixel once
    assert as_set(boundary) == traced == four_neighbour_rule(mask)
    assert mask[boundary[:, 1], boundary[:, 0]].all()  # (x, y) order


def test_without_holes_only_the_outer_contour_is_kept() -> None:
    mask = person_like_mask()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outer = {(int(x), int(y)) for contour in contours for x, y in contour[:, 0]}
    boundary = as_set(silhouette_boundary(mask, holes=False))
    assert boundary == outer
    hole_ring = four_neighbour_rule(mask) - outer
    assert len(hole_ring) > 20 and all(abs(np.hypot(x - 30, y - 30) - 6.5) < 1.5 for x, y in hole_ring)


def test_the_frame_edge_is_no_boundary() -> None:
    # A person cut by the bottom and left edges of the frame: no pixel is kept for those edges.
    mask = np.zeros((40, 50), bool)
    mask[20:, :30] = True
    boundary = as_set(silhouette_boundary(mask))
    expected = {(x, 20) for x in range(30)} | {(29, y) for y in range(20, 40)}
    assert boundary == expected == four_neighbour_rule(mask)


def test_edge_points_lie_on_a_straight_outline_on_average() -> None:
    """A half-plane at 20 degrees off the rows, as a mask of the pixel centres it covers: the
    boundary pixels' centres lie 0 to 1 pixel inside its edge (0.47 on average), the edge points
    on it (to 0.02 px), each half a pixel from its centre."""
    rows, columns = np.mgrid[0:80, 0:100]
    normal = np.array([np.sin(np.radians(20)), -np.cos(np.radians(20))])  # (x, y), outwards
    signed = (columns - 50.3) * normal[0] + (rows - 40.6) * normal[1]  # > 0 outside the edge
    mask = signed <= 0
    centres = silhouette_boundary(mask).astype(float)
    points = silhouette_edge_points(mask)
    assert points.dtype == np.float64 and points.shape == centres.shape
    np.testing.assert_allclose(np.linalg.norm(points - centres, axis=1), 0.5)
    distance = lambda xy: (xy[:, 0] - 50.3) * normal[0] + (xy[:, 1] - 40.6) * normal[1]  # noqa: E731
    assert -0.55 < distance(centres).mean() < -0.4 and distance(centres).max() <= 0
    assert abs(distance(points).mean()) < 0.02


def test_a_one_pixel_wide_part_keeps_its_centres() -> None:
    mask = np.zeros((5, 9), bool)
    mask[2, 1:8] = True  # background above and below: no side to move to
    np.testing.assert_array_equal(silhouette_edge_points(mask)[1:-1], silhouette_boundary(mask)[1:-1])
    np.testing.assert_array_equal(silhouette_edge_points(mask)[[0, -1]], [[0.5, 2.0], [7.5, 2.0]])


def test_empty_and_full_masks_have_no_boundary() -> None:
    assert silhouette_boundary(np.zeros((5, 6), bool)).shape == (0, 2)
    assert silhouette_boundary(np.ones((5, 6), bool)).shape == (0, 2)


@pytest.mark.parametrize("mask", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 1), bool)], ids=["uint8", "3d"])
def test_a_mask_must_be_2d_bool(mask: np.ndarray) -> None:
    with pytest.raises(ShapeError, match=r"mask must be an \(H, W\) bool array"):
        silhouette_boundary(mask)
