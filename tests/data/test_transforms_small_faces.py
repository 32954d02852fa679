"""Augmentation that makes faces smaller: zoom-out, scale jitter, mosaics, the small-face filter
and the composition built from them (data/transforms.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgevision.data.transforms import (
    DropSmallFaces,
    Mosaic,
    Resize,
    Sample,
    ScaleJitter,
    ZoomOut,
    drop_small_faces,
    faceboxes_train_transform,
    mosaic,
    small_face_train_transform,
    zoom_out,
)
from edgevision.errors import ConfigError

FILL = (104, 117, 123)
MEAN = (104.0, 117.0, 123.0)


def marked_image(height: int, width: int, mark: int = 255) -> np.ndarray:
    """B = x, G = y (both < 256), R = ``mark``: each pixel says where it was, and R tells the
    picture from the fill (R = 123) and from other pictures."""
    ys, xs = np.mgrid[:height, :width]
    return np.stack([xs, ys, np.full_like(xs, mark)], axis=2).astype(np.uint8)


def placement(image: np.ndarray, mark: int = 255) -> tuple[int, int, int, int]:
    """``(left, top, width, height)`` of the pixels whose R is ``mark``, checked to be a rectangle."""
    ys, xs = np.nonzero(image[..., 2] == mark)
    left, top, width, height = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert len(xs) == width * height
    return int(left), int(top), int(width), int(height)


# ---- zoom-out ----


def test_zoom_out_by_hand() -> None:
    image = marked_image(20, 30)
    boxes = np.array([[2, 4, 10, 12], [0, 0, 30, 20]], dtype=np.float32)
    out = zoom_out(Sample(image, boxes), canvas_size=(50, 40), offset=(7, 3), fill=FILL)
    assert out.image.shape == (40, 50, 3) and out.boxes.dtype == np.float32
    # x moves by left = 7, y by top = 3.
    np.testing.assert_array_equal(out.boxes, [[9, 7, 17, 15], [7, 3, 37, 23]])
    np.testing.assert_array_equal(out.image[3:23, 7:37], image)
    outside = np.ones((40, 50), bool)
    outside[3:23, 7:37] = False
    assert (out.image[outside] == FILL).all()
    with pytest.raises(ConfigError, match="does not fit"):
        zoom_out(Sample(image, boxes), canvas_size=(50, 40), offset=(-1, 3), fill=FILL)
    with pytest.raises(ConfigError, match="does not fit"):
        zoom_out(Sample(image, boxes), canvas_size=(50, 40), offset=(21, 3), fill=FILL)


def test_zoom_out_transform_puts_the_picture_where_its_boxes_say() -> None:
    image = marked_image(30, 50)
    boxes = np.array([[5, 2, 25, 28], [40, 10, 50, 30]], dtype=np.float32)
    ratios, offsets = [], set()
    for seed in range(40):
        out = ZoomOut(FILL, max_ratio=4.0, p=1.0)(Sample(image, boxes), np.random.default_rng(seed))
        left, top, width, height = placement(out.image)
        assert (width, height) == (50, 30)
        np.testing.assert_array_equal(out.image[top : top + 30, left : left + 50], image)
        np.testing.assert_array_equal(out.boxes, boxes + np.array([left, top, left, top], np.float32))
        canvas_height, canvas_width = out.image.shape[:2]
        # One ratio for both sides: int(50 * ratio) and int(30 * ratio) agree on it.
        low = max(canvas_width / 50, canvas_height / 30)
        assert 1.0 <= low < min((canvas_width + 1) / 50, (canvas_height + 1) / 30) and low <= 4.0
        ratios.append(low)
        offsets.add((left, top))
    assert min(ratios) < 1.5 and max(ratios) > 3.5 and len(offsets) > 30


def test_zoom_out_probability_and_pixel_cap() -> None:
    image = marked_image(80, 100)
    sample = Sample(image, np.array([[10, 20, 50, 60]], dtype=np.float32))
    assert ZoomOut(FILL, p=0.0)(sample, np.random.default_rng(0)) is sample
    zoomed = sum(ZoomOut(FILL, p=0.5)(sample, np.random.default_rng(s)) is not sample for s in range(200))
    assert 70 < zoomed < 130
    for seed in range(10):
        out = ZoomOut(FILL, max_ratio=4.0, p=1.0, max_pixels=20_000)(sample, np.random.default_rng(seed))
        assert out.image.shape[0] * out.image.shape[1] <= 20_000 * 1.05
        # The picture was shrunk before it was placed; its boxes shrank and moved with it.
        left, top, width, height = placement(out.image)
        scale = np.array([width / 100, height / 80] * 2, np.float32)
        np.testing.assert_allclose(out.boxes, sample.boxes * scale + [left, top, left, top], rtol=1e-6)
        assert 1.0 <= out.image.shape[1] / width < 4.0 + 1 / width


# ---- scale jitter ----


def test_scale_jitter_by_hand() -> None:
    image = np.random.default_rng(0).integers(0, 256, (50, 101, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 30, 40]], dtype=np.float32)
    out = ScaleJitter(0.5, 0.5)(Sample(image, boxes), np.random.default_rng(0))
    # 101 * 0.5 = 50.5 -> 51 px wide, 50 * 0.5 -> 25 px tall: x scales by 51/101, y by 1/2.
    assert out.image.shape == (25, 51, 3)
    np.testing.assert_allclose(out.boxes, [[10 * 51 / 101, 10, 30 * 51 / 101, 20]], rtol=1e-6)
    np.testing.assert_array_equal(out.image, cv2.resize(image, (51, 25), interpolation=cv2.INTER_AREA))
    # The cap: 2x would be 8000 pixels, at most 1000 allowed -> sqrt(1000 / 2000) = 0.707.
    capped = ScaleJitter(2.0, 2.0, max_pixels=1000)(Sample(image[:40, :50], boxes), np.random.default_rng(0))
    assert capped.image.shape == (28, 35, 3)  # 40 * 0.707 + 0.5 -> 28, 50 * 0.707 + 0.5 -> 35
    np.testing.assert_allclose(
        capped.boxes, [[10 * 35 / 50, 20 * 28 / 40, 30 * 35 / 50, 40 * 28 / 40]], rtol=1e-6
    )


def test_scale_jitter_is_log_uniform() -> None:
    sample = Sample(np.zeros((4, 1000, 3), np.uint8), np.zeros((0, 4), np.float32))
    factors = np.array(
        [ScaleJitter(0.5, 2.0)(sample, np.random.default_rng(s)).image.shape[1] / 1000 for s in range(400)]
    )
    assert factors.min() >= 0.5 and factors.max() <= 2.0
    # Log-uniform in [0.5, 2]: median 1, 25% under 0.71 (uniform: median 1.25, 14% under 0.71).
    assert 0.9 < np.median(factors) < 1.1
    assert 0.18 < np.mean(factors < 2**-0.5) < 0.32


# ---- mosaic ----


def test_mosaic_by_hand() -> None:
    """Four tiles in 10 x 10 cells of a 20 x 20 canvas, centre (10, 10)."""
    top_left = Sample(np.full((20, 20, 3), (10, 20, 30), np.uint8), np.array([[4, 4, 12, 12]], np.float32))
    # 20 wide, 10 tall: covers its cell at scale 1; cut fx = 1 shows its right half (x 10..20).
    top_right = Sample(
        marked_image(10, 20, mark=1),
        np.array([[8, 2, 14, 8], [2, 2, 9, 9], [6, 1, 13, 4]], np.float32),
    )
    # 10 wide, 30 tall: cut fy = 0 shows its top third (y 0..10).
    bottom_left = Sample(marked_image(30, 10, mark=2), np.array([[1, 2, 5, 6], [2, 8, 8, 14]], np.float32))
    bottom_right = Sample(marked_image(10, 10, mark=3), np.array([[5, 6, 12, 9], [7, 7, 13, 13]], np.float32))
    out = mosaic(
        [top_left, top_right, bottom_left, bottom_right],
        centre=(10, 10),
        cuts=[(0.5, 0.5), (1.0, 0.0), (0.0, 0.0), (0.0, 0.0)],
        size=20,
        min_visible=0.5,
    )
    assert out.image.shape == (20, 20, 3) and out.boxes.dtype == np.float32
    assert (out.image[:10, :10] == (10, 20, 30)).all()
    np.testing.assert_array_equal(out.image[:10, 10:], top_right.image[:, 10:])
    np.testing.assert_array_equal(out.image[10:, :10], bottom_left.image[:10])
    np.testing.assert_array_equal(out.image[10:, 10:], bottom_right.image)
    expected = [
        [2, 2, 6, 6],  # top-left: halved
        # top-right, x - 10 + 10: [8, 2, 14, 8] keeps 4/6 of its area, clipped at x = 10;
        # [2, 2, 9, 9] is in the cut-off half, [6, 1, 13, 4] keeps 3/7 < 1/2: both dropped.
        [10, 2, 14, 8],
        # bottom-left, y + 10: [1, 2, 5, 6] -> [1, 12, 5, 16];
        # [2, 8, 8, 14] -> [2, 18, 8, 24] keeps 2/6 above the canvas' bottom: dropped.
        [1, 12, 5, 16],
        # bottom-right, + (10, 10): [5, 6, 12, 9] -> [15, 16, 22, 19] keeps 5/7, clipped at x = 20;
        # [7, 7, 13, 13] -> [17, 17, 23, 23] keeps 9/36: dropped.
        [15, 16, 20, 19],
    ]
    np.testing.assert_array_equal(out.boxes, expected)


def painted_tile(height: int, width: int, tile_id: int, boxes: np.ndarray) -> Sample:
    """Black picture with R = 40 * ``tile_id`` and its faces painted B = G = 255."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 2] = 40 * tile_id
    for x1, y1, x2, y2 in boxes.astype(int):
        image[y1:y2, x1:x2, :2] = 255
    return Sample(image, boxes)


TILES = [
    painted_tile(
        120, 200, 1, np.array([[20, 30, 60, 80], [150, 10, 190, 60], [90, 90, 130, 118]], np.float32)
    ),
    painted_tile(200, 100, 2, np.array([[10, 10, 50, 60], [40, 120, 90, 190]], np.float32)),
    painted_tile(90, 90, 3, np.array([[0, 0, 40, 40], [50, 50, 90, 90]], np.float32)),
    painted_tile(150, 300, 4, np.array([[100, 20, 160, 100], [220, 60, 290, 140]], np.float32)),
    painted_tile(60, 80, 5, np.array([[30, 10, 60, 50]], np.float32)),
]


def draw_tile(rng: np.random.Generator) -> Sample:
    return TILES[1 + int(rng.integers(len(TILES) - 1))]


@pytest.mark.parametrize("seed", range(10))
def test_mosaic_boxes_lie_on_their_faces(seed: int) -> None:
    out = Mosaic(200, draw_tile, p=1.0)(TILES[0], np.random.default_rng(seed))
    assert out.image.shape == (200, 200, 3)
    assert 40 in np.unique(out.image[..., 2])  # the sample itself is one of the four
    assert len(out.boxes) > 0
    for x1, y1, x2, y2 in out.boxes:
        assert 0 <= x1 < x2 <= 200 and 0 <= y1 < y2 <= 200
        # The inside (two pixels in from each edge, for the resize's blur) is painted face, and of
        # one picture: a box that was not shifted, not scaled, x/y swapped or not clipped at a
        # cell's edge fails one of these.
        inner = out.image[int(y1) + 2 : int(np.ceil(y2)) - 2, int(x1) + 2 : int(np.ceil(x2)) - 2]
        assert (inner[..., :2] == 255).all()
        assert len(np.unique(inner[..., 2])) == 1


def test_mosaic_is_reproducible_and_skipped_at_p_0() -> None:
    transform = Mosaic(200, draw_tile, p=1.0)
    first = transform(TILES[0], np.random.default_rng([3, 1]))
    again = transform(TILES[0], np.random.default_rng([3, 1]))
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.boxes, again.boxes)
    assert any(
        not np.array_equal(first.image, transform(TILES[0], np.random.default_rng([3, k])).image)
        for k in range(2, 5)
    )

    def no_draw(rng: np.random.Generator) -> Sample:
        raise AssertionError("drew a sample for a mosaic that was not made")

    assert Mosaic(200, no_draw, p=0.0)(TILES[0], np.random.default_rng(0)) is TILES[0]


# ---- the small-face filter ----


def test_drop_small_faces_looks_at_the_short_side() -> None:
    boxes = np.array([[0, 0, 16, 40], [0, 0, 17, 17], [0, 0, 40, 10], [5, 5, 30, 30]], np.float32)
    np.testing.assert_array_equal(drop_small_faces(boxes, 16), boxes[[1, 3]])
    np.testing.assert_array_equal(drop_small_faces(boxes, 16, scale=2.0), boxes)
    np.testing.assert_array_equal(drop_small_faces(boxes, 16, scale=0.5), np.zeros((0, 4), np.float32))
    out = DropSmallFaces(16)(Sample(np.zeros((50, 50, 3), np.uint8), boxes), np.random.default_rng(0))
    np.testing.assert_array_equal(out.boxes, boxes[[1, 3]])


def test_resize_keeps_a_border_box_inside() -> None:
    # float32(75) * float32(320 / 75) is 320.00003: a box on the border came out of the image.
    sample = Sample(np.zeros((75, 75, 3), np.uint8), np.array([[0, 0, 75, 75]], np.float32))
    out = Resize(320, random_interpolation=False)(sample, np.random.default_rng(0))
    assert out.boxes.max() <= 320


# ---- option checks ----


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ZoomOut(FILL, max_ratio=0.5), "max_ratio"),
        (lambda: ZoomOut(FILL, p=float("nan")), "ZoomOut p"),
        (lambda: ZoomOut(FILL, max_pixels=0), "max_pixels"),
        (lambda: ScaleJitter(0.0, 2.0), "min_scale"),
        (lambda: ScaleJitter(2.0, 1.0), "max_scale"),
        (lambda: ScaleJitter(0.5, float("inf")), "max_scale"),
        (lambda: Mosaic(1, draw_tile), "Mosaic size"),
        (lambda: Mosaic(64, draw_tile, centre_range=(0.0, 0.5)), "centre_range low"),
        (lambda: Mosaic(64, draw_tile, centre_range=(0.6, 0.5)), "centre_range high"),
        (lambda: Mosaic(64, draw_tile, min_visible=0.0), "min_visible"),
    ],
)
def test_bad_options_are_refused(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


# ---- the composition ----

# WIDER FACE train's make-up, per picture: (faces, median face height in px of a 1024-wide
# picture, pictures out of 25). Crowds have small faces, portraits large ones.
WIDER_LIKE = [(1, 256, 9), (2, 140, 8), (6, 74, 4), (14, 41, 3), (30, 23, 1)]
SCHEDULE = [(faces, height) for faces, height, count in WIDER_LIKE for _ in range(count)]


def wider_like_picture(rng: np.random.Generator, kind: int | None = None) -> Sample:
    """A blank 256 x 192 picture whose faces, relative to its width, are twice WIDER's: at a 512
    input they come out at the sizes WIDER's do at FaceBoxes' 1024 (the geometry is relative, the
    16 and 32 px thresholds are not)."""
    width, height = 256, 192
    faces, median = SCHEDULE[kind % len(SCHEDULE) if kind is not None else int(rng.integers(len(SCHEDULE)))]
    tall = np.minimum(np.exp(rng.normal(np.log(median / 512 * width), 0.5, faces)), 0.9 * height)
    wide = 0.8 * tall
    x, y = rng.uniform(0, width - wide), rng.uniform(0, height - tall)
    boxes = np.stack([x, y, x + wide, y + tall], axis=1).astype(np.float32)
    return Sample(np.zeros((height, width, 3), np.uint8), boxes)


def output_heights(transform, draws: int = 200) -> np.ndarray:
    """Heights of every output face over ``draws`` augmented WIDER-like pictures (the five kinds
    in turn, so both transforms see the same pictures)."""
    heights = []
    for k in range(draws):
        out = transform(
            wider_like_picture(np.random.default_rng([0, k]), kind=k), np.random.default_rng([1, k])
        )
        heights.append(out.boxes[:, 3] - out.boxes[:, 1])
    return np.concatenate(heights)


@pytest.mark.parametrize("with_mosaics", [False, True], ids=["alone", "mosaics"])
def test_small_face_transform_makes_more_small_faces(with_mosaics: bool) -> None:
    draw = wider_like_picture if with_mosaics else None
    faceboxes = output_heights(faceboxes_train_transform(512, MEAN))
    small = output_heights(small_face_train_transform(512, MEAN, draw))
    bins = [0, 16, 32, 64, 128, 256, 1024]
    print("FaceBoxes ", np.histogram(faceboxes, bins)[0], "\nsmall-face", np.histogram(small, bins)[0])
    # FaceBoxes' crop only enlarges: few of its faces are small, but some are (else any ratio holds).
    assert 0.02 < np.mean(faceboxes < 32) < 0.15
    assert np.mean(small < 32) >= 2 * np.mean(faceboxes < 32)
    assert np.median(small) < 0.7 * np.median(faceboxes)
    # Nothing under the 16 px that cannot be learnt from, and as many faces as FaceBoxes' gives.
    assert small.min() > 16
    assert len(small) > 0.8 * len(faceboxes)


@pytest.mark.parametrize("with_mosaics", [False, True], ids=["alone", "mosaics"])
def test_small_face_transform_is_reproducible_and_keeps_boxes_inside(with_mosaics: bool) -> None:
    transform = small_face_train_transform(128, MEAN, wider_like_picture if with_mosaics else None)
    outputs, faces_out = [], 0
    for seed in range(25):
        rng = np.random.default_rng(seed)
        faces = wider_like_picture(rng, kind=seed).boxes
        picture = Sample(rng.integers(0, 256, (192, 256, 3), dtype=np.uint8), faces)
        out = transform(picture, np.random.default_rng([seed, 7]))
        again = transform(picture, np.random.default_rng([seed, 7]))
        np.testing.assert_array_equal(out.image, again.image)
        np.testing.assert_array_equal(out.boxes, again.boxes)
        assert out.image.shape == (128, 128, 3) and out.image.dtype == np.uint8
        assert out.boxes.dtype == np.float32
        x1, y1, x2, y2 = out.boxes.T
        assert ((0 <= x1) & (x1 < x2) & (x2 <= 128) & (0 <= y1) & (y1 < y2) & (y2 <= 128)).all()
        assert (np.minimum(x2 - x1, y2 - y1) > 16).all()
        outputs.append(out.image)
        faces_out += len(out.boxes)
    assert len({o.tobytes() for o in outputs}) == len(outputs)
    assert faces_out >= 25  # the checks above saw faces, not only empty outputs
