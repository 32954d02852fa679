"""Alignment against independent references: the 4-parameter linear least squares of a
similarity, and warped pixels that must land on the template."""

import numpy as np
import pytest

from edgevision.errors import ShapeError
from edgevision.recognition.alignment import (
    ARCFACE_TEMPLATE,
    align_face,
    as_bgr,
    face_crop_input,
    similarity_transform,
)


def _lstsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """x' = a x - b y + tx, y' = b x + a y + ty, solved as a linear least-squares problem."""
    rows = []
    for x, y in src:
        rows.append([x, -y, 1, 0])
        rows.append([y, x, 0, 1])
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), dst.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_recovers_an_exact_similarity():
    angle, scale, shift = np.deg2rad(23.0), 2.7, np.array([-40.0, 13.5])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE.astype(np.float64)
    dst = src @ (scale * rotation).T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_points_match_linear_least_squares(seed):
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 200, (5, 2))
    dst = rng.uniform(0, 112, (5, 2))  # unrelated points: the fit is far from exact
    np.testing.assert_allclose(similarity_transform(src, dst), _lstsq_similarity(src, dst), atol=1e-8)


def test_a_mirrored_face_is_not_reflected():
    src = ARCFACE_TEMPLATE.astype(np.float64)
    mirrored = src * [-1, 1] + [112, 0]
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0  # a rotation and scale, never a reflection
    np.testing.assert_allclose(matrix, _lstsq_similarity(src, mirrored), atol=1e-8)


def test_align_face_puts_the_landmarks_on_the_template():
    # Five white dots at the landmarks of a rotated, scaled face in a 300x260 image.
    angle, scale, shift = np.deg2rad(-15.0), 1.9, np.array([60.0, 40.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = ARCFACE_TEMPLATE @ (scale * rotation).T + shift
    image = np.zeros((260, 300, 3), np.uint8)
    for x, y in np.round(landmarks).astype(int):
        image[y - 2 : y + 3, x - 2 : x + 3] = 255
    aligned = align_face(image, landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    for x, y in ARCFACE_TEMPLATE:
        assert aligned[int(round(y)), int(round(x))].min() > 200, (x, y)
    assert aligned[10, 10].max() == 0  # far from every dot


def test_grey_images_become_three_equal_channels():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    bgr = as_bgr(grey)
    assert bgr.shape == (3, 4, 3)
    assert (bgr == grey[:, :, None]).all()
    assert as_bgr(grey[:, :, None]).shape == (3, 4, 3)
    with pytest.raises(ShapeError):
        as_bgr(np.zeros((3, 4, 2), np.uint8))


def test_face_crop_input_keeps_the_aspect_and_centres_the_face():
    rng = np.random.default_rng(0)
    orl = rng.integers(0, 256, (112, 92), dtype=np.uint8)  # an ORL-sized grey crop
    out = face_crop_input(orl)
    assert out.shape == (112, 112, 3)
    np.testing.assert_array_equal(out[:, 10:102, 1], orl)  # height fits: no resampling, 10 px a side
    np.testing.assert_array_equal(out[:, :10, 0], np.repeat(orl[:, :1], 10, axis=1))  # border repeated


def test_bad_landmarks_are_refused():
    with pytest.raises(ShapeError, match=r"\(5, 2\)"):
        align_face(np.zeros((50, 50, 3), np.uint8), np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="coincide"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE)
    with pytest.raises(ShapeError, match="finite"):
        similarity_transform(np.full((5, 2), np.nan), ARCFACE_TEMPLATE)
