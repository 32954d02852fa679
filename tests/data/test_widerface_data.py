"""WIDER FACE annotations (official text format) and the training transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgevision.data.transforms import (
    ColorJitter,
    RandomMirror,
    RandomSquareCrop,
    Resize,
    Sample,
    faceboxes_train_transform,
    pad_to_square,
)
from edgevision.data.widerface import load_split, parse_annotations
from edgevision.errors import DatasetError

# The official format, byte for byte: trailing spaces, and a face-less image written as n = 0
# followed by one line of zeros.
OFFICIAL_SAMPLE = """\
0--Parade/0_Parade_marchingband_1_849.jpg
1
449 330 122 149 0 0 0 0 0 0 
0--Parade/0_Parade_Parade_0_904.jpg
0
0 0 0 0 0 0 0 0 0 0 
12--Group/12_Group_Group_12_Group_Group_12_10.jpg
3
135 152 30 40 2 0 1 0 0 0 
0 0 0 0 0 0 0 1 0 0 
510 77 18 22 1 1 0 0 2 1 
"""


def write_sample(tmp_path: Path, text: str = OFFICIAL_SAMPLE) -> Path:
    path = tmp_path / "wider_face_val_bbx_gt.txt"
    path.write_text(text)
    return path


def test_parser_on_official_format(tmp_path: Path) -> None:
    records = parse_annotations(write_sample(tmp_path))
    assert [r.name for r in records] == [
        "0--Parade/0_Parade_marchingband_1_849.jpg",
        "0--Parade/0_Parade_Parade_0_904.jpg",
        "12--Group/12_Group_Group_12_Group_Group_12_10.jpg",
    ]
    first, empty, group = records
    assert first.boxes.dtype == np.float32 and first.attributes.dtype == np.int32
    np.testing.assert_array_equal(first.boxes, [[449, 330, 571, 479]])
    assert first.key == "0--Parade/0_Parade_marchingband_1_849"
    assert empty.boxes.shape == (0, 4) and empty.attributes.shape == (0, 6) and empty.valid.shape == (0,)
    np.testing.assert_array_equal(group.boxes, [[135, 152, 165, 192], [0, 0, 0, 0], [510, 77, 528, 99]])
    # Columns blur expression illumination invalid occlusion pose.
    np.testing.assert_array_equal(
        group.attributes, [[2, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0], [1, 1, 0, 0, 2, 1]]
    )
    assert group.valid.tolist() == [True, False, True]


def test_invalid_flag_alone_makes_a_face_invalid(tmp_path: Path) -> None:
    text = "a/b.jpg\n2\n10 10 20 20 0 0 0 1 0 0 \n10 10 20 0 0 0 0 0 0 0 \n"
    (record,) = parse_annotations(write_sample(tmp_path, text))
    assert record.valid.tolist() == [False, False]  # flagged invalid; zero height


def test_parser_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        parse_annotations(tmp_path / "absent.txt")
    for bad in ("a/b.jpg\nthree\n", "a/b.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n", "a/b.jpg\n1\n1 2 x 4 0 0 0 0 0 0\n"):
        with pytest.raises(DatasetError, match="malformed") as info:
            parse_annotations(write_sample(tmp_path, bad))
        assert "\n" not in str(info.value)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(
        OFFICIAL_SAMPLE.encode().replace(b"0--Parade/0_Parade_Parade", b"0--Parade/0_D\xe9fil\xe9")
    )
    with pytest.raises(DatasetError, match=r"latin1.txt line 4 is not UTF-8 text \(byte 0xe9\)$"):
        parse_annotations(latin1)


def count_faces_by_hand(path: Path) -> tuple[int, int]:
    """Images and faces of an official annotation file, counted without the parser."""
    lines = path.read_text().splitlines()
    images = faces = i = 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i + 1])
        images, faces, i = images + 1, faces + n, i + 2 + max(n, 1)
    return images, faces


@pytest.mark.parametrize("split, images, faces", [("train", 1239, 6590), ("val", 140, 803)])
def test_real_subset_counts(data_dir: Path, split: str, images: int, faces: int) -> None:
    root = data_dir / "widerface"
    if not root.is_dir():
        pytest.skip(f"WIDER FACE subset not found at {root}")
    loaded = load_split(root, split)
    assert len(loaded.records) == images
    assert sum(len(r.boxes) for r in loaded.records) == faces
    assert count_faces_by_hand(root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt") == (
        images,
        faces,
    )
    assert all(loaded.image_path(r).is_file() for r in loaded.records)
    assert all((r.boxes[:, 2:] >= r.boxes[:, :2]).all() for r in loaded.records)


def test_load_split_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown WIDER FACE split"):
        load_split(tmp_path, "test")
    with pytest.raises(DatasetError, match="images not found"):
        load_split(tmp_path, "val")
    (tmp_path / "WIDER_val" / "images").mkdir(parents=True)
    (tmp_path / "wider_face_split").mkdir()
    write_sample(tmp_path / "wider_face_split")
    with pytest.raises(DatasetError, match="no annotated image"):
        load_split(tmp_path, "val")


# ---- transforms ----


def coordinate_image(height: int, width: int) -> np.ndarray:
    """Pixels that say where they are: B = x % 256, G = y % 256, R = 16 * (x // 256) + y // 256."""
    ys, xs = np.mgrid[:height, :width]
    return np.stack([xs % 256, ys % 256, 16 * (xs // 256) + ys // 256], axis=2).astype(np.uint8)


def locate(pixel: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of a pixel of :func:`coordinate_image`."""
    b, g, r = (int(v) for v in pixel)
    return b + 256 * (r // 16), g + 256 * (r % 16)


FACES = np.array(
    [[40, 40, 100, 110], [300, 50, 330, 80], [200, 200, 260, 270], [520, 300, 580, 380], [10, 330, 30, 350]],
    dtype=np.float32,
)


@pytest.mark.parametrize("seed", range(12))
def test_random_square_crop_invariants(seed: int) -> None:
    image = coordinate_image(400, 600)
    crop = RandomSquareCrop(output_size=256)
    out = crop(Sample(image, FACES), np.random.default_rng(seed))
    side = out.image.shape[0]
    assert out.image.shape == (side, side, 3) and out.boxes.dtype == np.float32
    if side == 600:  # fell back to padding: nothing cropped, boxes unchanged
        np.testing.assert_array_equal(out.boxes, FACES)
        return
    left, top = locate(out.image[0, 0])
    assert locate(out.image[-1, -1]) == (left + side - 1, top + side - 1)
    roi = np.array([left, top, left + side, top + side], dtype=np.float32)
    # Independent expectation: faces centred strictly inside, clipped, shifted, > 16 px at 256.
    centres = (FACES[:, :2] + FACES[:, 2:]) / 2
    expected = FACES[((centres > roi[:2]) & (centres < roi[2:])).all(axis=1)]
    expected = np.concatenate([np.maximum(expected[:, :2], roi[:2]), np.minimum(expected[:, 2:], roi[2:])], 1)
    expected -= np.tile(roi[:2], 2)
    expected = expected[(expected[:, 2:] - expected[:, :2]).min(axis=1) * 256 / side > 16]
    np.testing.assert_array_equal(out.boxes, expected)
    assert len(out.boxes) > 0
    assert ((out.boxes >= 0) & (out.boxes <= side)).all()
    # At least one face lies wholly inside the crop.
    assert ((FACES[:, :2] >= roi[:2]) & (FACES[:, 2:] <= roi[2:])).all(axis=1).any()


def test_random_square_crop_without_faces_pads() -> None:
    image = coordinate_image(100, 160)
    out = RandomSquareCrop(output_size=64)(
        Sample(image, np.zeros((0, 4), np.float32)), np.random.default_rng(0)
    )
    assert out.image.shape == (160, 160, 3)
    np.testing.assert_array_equal(out.image[:100], image)
    assert (out.image[100:] == np.array([104, 117, 123], np.uint8)).all()
    assert pad_to_square(Sample(image, FACES), (0, 0, 0)).boxes is FACES


def test_random_mirror() -> None:
    image = coordinate_image(50, 80)
    sample = Sample(image, np.array([[10, 5, 30, 25], [0, 0, 80, 50]], dtype=np.float32))
    mirror = RandomMirror(p=1.0)
    once = mirror(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(once.boxes, [[50, 5, 70, 25], [0, 0, 80, 50]])
    np.testing.assert_array_equal(once.image, image[:, ::-1])
    twice = mirror(once, np.random.default_rng(0))
    np.testing.assert_array_equal(twice.boxes, sample.boxes)
    np.testing.assert_array_equal(twice.image, image)
    assert RandomMirror(p=0.0)(sample, np.random.default_rng(0)) is sample


def test_color_jitter_keeps_boxes_and_is_seeded() -> None:
    image = np.random.default_rng(5).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    original = image.copy()
    jitter = ColorJitter()
    changed = 0
    for seed in range(10):
        out = jitter(Sample(image, FACES), np.random.default_rng(seed))
        assert out.image.dtype == np.uint8 and out.image.shape == image.shape
        np.testing.assert_array_equal(out.boxes, FACES)
        again = jitter(Sample(image, FACES), np.random.default_rng(seed))
        np.testing.assert_array_equal(out.image, again.image)
        changed += not np.array_equal(out.image, image)
    assert changed >= 1
    np.testing.assert_array_equal(image, original)  # the input is not modified in place


def test_brightness_only_jitter_shifts_grey_by_at_most_32() -> None:
    grey = np.full((8, 8, 3), 128, np.uint8)
    jitter = ColorJitter(brightness=32.0, contrast=0.0, saturation=0.0, hue=0)
    shifts = set()
    for seed in range(10):
        shift = jitter(Sample(grey, FACES), np.random.default_rng(seed)).image.astype(int) - 128
        assert (shift == shift[0, 0, 0]).all()  # one shift for every pixel and channel: still grey
        assert abs(shift[0, 0, 0]) <= 32
        shifts.add(int(shift[0, 0, 0]))
    assert len(shifts) > 1


def test_resize_scales_boxes() -> None:
    sample = Sample(np.zeros((200, 400, 3), np.uint8), np.array([[40, 20, 120, 100]], dtype=np.float32))
    out = Resize(100, random_interpolation=False)(sample, np.random.default_rng(0))
    assert out.image.shape == (100, 100, 3) and out.boxes.dtype == np.float32
    np.testing.assert_allclose(out.boxes, [[10, 10, 30, 50]])


def test_train_transform_is_reproducible_from_its_seed() -> None:
    rng = np.random.default_rng(123)
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    transform = faceboxes_train_transform(128, (104.0, 117.0, 123.0))
    first = transform(Sample(image, FACES[:4] * 0.7), np.random.default_rng([7, 0, 3]))
    second = transform(Sample(image, FACES[:4] * 0.7), np.random.default_rng([7, 0, 3]))
    assert first.image.shape == (128, 128, 3)
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.boxes, second.boxes)
    others = [
        transform(Sample(image, FACES[:4] * 0.7), np.random.default_rng([7, 0, k])) for k in range(4, 8)
    ]
    assert any(not np.array_equal(first.image, other.image) for other in others)
