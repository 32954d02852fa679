"""Landmarks through the training augmentation: they move exactly as their face's box does
(hand-computed for the mirror, a resize and a zoom-out; for random crops and the whole chains, the
box's own affine map), a mirror swaps the left and right points, and faces dropped take their
points with them."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.data.transforms import (
    DropSmallFaces,
    RandomSquareCrop,
    Sample,
    faceboxes_train_transform,
    mirror,
    mosaic,
    resize_sample,
    small_face_train_transform,
    zoom_out,
)

# A face's points as fractions of its box: eye on the image's left, eye on the right, nose,
# mouth corners left and right; a face turned a little, so its mirror image is another layout.
LAYOUT = np.array([[0.3, 0.35], [0.68, 0.38], [0.42, 0.55], [0.33, 0.75], [0.62, 0.78]], np.float32)


# The layout of the mirror image: x -> 1 - x, the left and right points swapped.
MIRRORED_LAYOUT = np.stack([1 - LAYOUT[[1, 0, 2, 4, 3], 0], LAYOUT[[1, 0, 2, 4, 3], 1]], 1)


def points_in(boxes: np.ndarray, layout: np.ndarray = LAYOUT) -> np.ndarray:
    """``layout`` placed in each ``(N, 4)`` box: ``(N, 5, 2)``."""
    return (boxes[:, None, :2] + layout[None] * (boxes[:, None, 2:] - boxes[:, None, :2])).astype(np.float32)


def make_sample(
    boxes: list[list[float]], size: tuple[int, int] = (300, 200), nan_last: bool = False
) -> Sample:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    boxes = np.array(boxes, np.float32)
    landmarks = points_in(boxes)
    if nan_last:
        landmarks[-1] = np.nan
    return Sample(image, boxes, landmarks)


def test_mirror_maps_x_to_width_minus_x_and_swaps_left_and_right() -> None:
    sample = make_sample([[10, 20, 110, 140]])
    flipped = mirror(sample)
    np.testing.assert_array_equal(flipped.boxes, [[190, 20, 290, 140]])
    x, y = sample.landmarks[0, :, 0], sample.landmarks[0, :, 1]
    # The left eye at x = 40 becomes the right eye at 260; the right eye (78) becomes the left (222).
    expected = np.stack([300 - x[[1, 0, 2, 4, 3]], y[[1, 0, 2, 4, 3]]], axis=1)
    np.testing.assert_allclose(flipped.landmarks[0], expected, atol=1e-5)
    assert flipped.landmarks[0, 0, 0] < flipped.landmarks[0, 1, 0]  # still the image's left first
    # The flipped points are the layout mirrored inside the flipped box.
    np.testing.assert_allclose(flipped.landmarks, points_in(flipped.boxes, MIRRORED_LAYOUT), atol=1e-4)
    np.testing.assert_allclose(mirror(flipped).landmarks, sample.landmarks, atol=1e-4)


def test_resize_and_zoom_out_move_points_hand_computed() -> None:
    sample = make_sample([[10, 20, 110, 140]])
    resized = resize_sample(sample, 150, 400)  # x 0.5, y 2
    np.testing.assert_allclose(resized.landmarks[0, 0], [40 * 0.5, 62 * 2], atol=1e-4)
    zoomed = zoom_out(sample, (500, 300), (30, 7), (0, 0, 0))
    np.testing.assert_allclose(zoomed.landmarks[0, 0], [40 + 30, 62 + 7], atol=1e-4)


def test_dropped_faces_take_their_landmarks_and_nan_stays_nan() -> None:
    sample = make_sample([[10, 20, 110, 140], [200, 20, 210, 28], [120, 50, 200, 150]], nan_last=True)
    kept = DropSmallFaces(16)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(kept.boxes, sample.boxes[[0, 2]])
    np.testing.assert_array_equal(kept.landmarks[0], sample.landmarks[0])
    assert np.isnan(kept.landmarks[1]).all()
    assert DropSmallFaces(16)(Sample(sample.image, sample.boxes), np.random.default_rng(0)).landmarks is None


def affine_of_box(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-axis scale and offset that maps box ``before`` onto ``after`` (no flip)."""
    scale = (after[2:] - after[:2]) / (before[2:] - before[:2])
    return scale, after[:2] - before[:2] * scale


def test_random_crops_move_points_as_the_box_of_a_face_wholly_inside() -> None:
    # One face: the crop keeps it wholly inside (its rule), so the box is not clipped.
    sample = make_sample([[60, 50, 140, 150]])
    for seed in range(20):
        cropped = RandomSquareCrop(256, pad_value=(0, 0, 0))(sample, np.random.default_rng(seed))
        scale, offset = affine_of_box(sample.boxes[0], cropped.boxes[0])
        np.testing.assert_allclose(scale, [1, 1])
        np.testing.assert_allclose(cropped.landmarks[0], sample.landmarks[0] * scale + offset, atol=1e-3)


@pytest.mark.parametrize("chain", ["faceboxes", "small_faces"])
def test_whole_augmentations_keep_points_on_the_layout_of_their_box(chain: str) -> None:
    # (Mosaics, which clip faces at their cells' edges, have their own test below.)
    sample = make_sample([[60, 50, 140, 150]])
    transform = (
        faceboxes_train_transform(256, (104, 117, 123))
        if chain == "faceboxes"
        else small_face_train_transform(256, (104, 117, 123))
    )
    mirrored = 0
    for seed in range(30):
        out = transform(sample, np.random.default_rng(seed))
        # Faces wholly inside the output (not clipped) show the layout exactly, or its mirror image.
        for box, points in zip(out.boxes, out.landmarks):
            if (box[:2] <= 0.01).any() or (box[2:] >= 255.99).any():
                continue
            plain, flipped = points_in(box[None])[0], points_in(box[None], MIRRORED_LAYOUT)[0]
            assert np.allclose(points, plain, atol=0.05) or np.allclose(points, flipped, atol=0.05)
            mirrored += not np.allclose(points, plain, atol=0.05)
            assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]
    assert mirrored > 0


def test_mosaic_moves_each_tiles_points_and_fills_nan_for_tiles_without() -> None:
    with_points = make_sample([[60, 50, 140, 150]], size=(200, 200))
    without = Sample(with_points.image, np.array([[20, 20, 120, 120]], np.float32))
    out = mosaic([with_points, without, without, without], (100, 100), [(0.0, 0.0)] * 4, 200, 0.5)
    # Tile 0 fills the top-left 100x100 cell: the 200 px image halves, its top-left corner at 0.
    np.testing.assert_allclose(out.boxes[0], [30, 25, 70, 75], atol=1e-4)
    np.testing.assert_allclose(out.landmarks[0], with_points.landmarks[0] * 0.5, atol=1e-4)
    assert out.landmarks.shape == (len(out.boxes), 5, 2) and np.isnan(out.landmarks[1:]).all()
