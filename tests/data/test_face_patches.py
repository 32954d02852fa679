"""Face / non-face patches from WIDER FACE: the pixels, the overlap bound, balance, determinism and
the cache file's checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.data.face_patches import (
    PatchOptions,
    build_face_patches,
    cached_face_patches,
    face_square,
    load_face_patches,
    overlaps,
    save_face_patches,
)
from edgevision.data.widerface import load_split
from edgevision.errors import ConfigError, InputFileError

IMAGES = 12  # the first dev-val images: a few hundred faces, about a second to cut


@pytest.fixture(scope="module")
def small_split(data_dir: Path):
    root = data_dir / "widerface"
    if not root.is_dir():
        pytest.skip(f"WIDER FACE subset not found at {root}")
    split = load_split(root, "val")
    return replace(split, records=split.records[:IMAGES])


@pytest.fixture(scope="module")
def patches(small_split):
    return build_face_patches(small_split, PatchOptions(seed=3))


def test_face_square_by_hand() -> None:
    # A 10 x 20 box centred on (15, 30): the square's side is 1.25 x 20 = 25, centred there.
    assert face_square(np.array([10.0, 20.0, 20.0, 40.0]), 1.25) == (3, 18, 28, 43)


def test_overlaps_by_hand() -> None:
    square = np.array([0.0, 0.0, 10.0, 10.0])
    boxes = np.array([[5.0, 0.0, 15.0, 10.0], [2.0, 2.0, 4.0, 4.0], [20.0, 20.0, 30.0, 30.0]])
    iou, iof = overlaps(square, boxes)
    np.testing.assert_allclose(iou, [50 / 150, 4 / 100, 0.0])
    np.testing.assert_allclose(iof, [0.5, 1.0, 0.0])


def test_face_patches_hold_the_boxes_pixels(small_split, patches) -> None:
    faces = np.flatnonzero(patches.labels == 1)
    assert len(faces) > 50
    for i in faces[:: max(1, len(faces) // 10)]:
        record = small_split.records[patches.sources[i]]
        image = cv2.imread(str(small_split.image_path(record)))[:, :, ::-1]  # read independently
        x1, y1, x2, y2 = patches.squares[i]
        # The square is the context square of one of the image's boxes (the one it is centred on).
        centres = (record.boxes[:, :2] + record.boxes[:, 2:]) / 2
        box = record.boxes[np.argmin(np.abs(centres - [(x1 + x2) / 2, (y1 + y2) / 2]).sum(1))]
        side = max(box[2] - box[0], box[3] - box[1])
        assert max(box[2] - box[0], box[3] - box[1]) >= 16
        assert abs((x2 - x1) - 1.25 * side) <= 0.5 and x2 - x1 == y2 - y1
        expected = cv2.resize(
            np.ascontiguousarray(image[y1:y2, x1:x2]), (32, 32), interpolation=cv2.INTER_AREA
        )
        np.testing.assert_array_equal(patches.images[i], expected)


def test_non_faces_overlap_no_face(small_split, patches) -> None:
    non_faces = np.flatnonzero(patches.labels == 0)
    for i in non_faces:
        boxes = small_split.records[patches.sources[i]].boxes  # every box, small and invalid too
        square = patches.squares[i].astype(np.float64)
        iou, iof = overlaps(square, boxes)
        assert (iou < 0.3).all()
        sizeable = (
            np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= (square[2] - square[0]) / 4
        )
        assert (iof[sizeable] <= 0.5).all()


def test_balanced_and_deterministic(small_split, patches) -> None:
    assert patches.labels.sum() * 2 == len(patches)
    again = build_face_patches(small_split, PatchOptions(seed=3))
    np.testing.assert_array_equal(again.images, patches.images)
    np.testing.assert_array_equal(again.squares, patches.squares)
    other = build_face_patches(small_split, PatchOptions(seed=4))
    assert not np.array_equal(other.squares[other.labels == 0], patches.squares[patches.labels == 0])


def test_cache_round_trip_and_reuse(small_split, patches, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "p.npz"
    save_face_patches(patches, path)
    loaded = load_face_patches(path)
    np.testing.assert_array_equal(loaded.images, patches.images)
    np.testing.assert_array_equal(loaded.labels, patches.labels)
    assert loaded.names == patches.names and loaded.provenance == patches.provenance
    # cached_face_patches returns a matching cache without rebuilding it.
    cache = tmp_path / "face_patches_val_32px_seed3.npz"
    save_face_patches(patches, cache)
    monkeypatch.setattr("edgevision.data.face_patches.build_face_patches", None)
    assert cached_face_patches(small_split.root, "val", tmp_path, PatchOptions(seed=3)) == cache


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b"not a zip"), "not a face patch .npz file"),
        (lambda p: np.savez(p, images=np.zeros((2, 32, 32, 3), np.uint8)), "no labels"),
        (
            lambda p: np.savez(
                p,
                images=np.zeros((2, 32, 32, 3), np.uint8),
                labels=np.array([0, 2], np.uint8),
                squares=np.zeros((2, 4), np.int32),
                sources=np.zeros(2, np.int32),
                names=np.array(["a.jpg"]),
                provenance=np.array('{"format_version": 1}'),
            ),
            "labels must be uint8 0 / 1",
        ),
    ],
)
def test_bad_cache_file_is_one_line_error(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "bad.npz"
    damage(path)
    with pytest.raises(InputFileError, match=message) as info:
        load_face_patches(path)
    assert "\n" not in str(info.value)


def test_bad_options_refused() -> None:
    with pytest.raises(ConfigError, match="max_iou"):
        PatchOptions(max_iou=float("nan"))
    with pytest.raises(ConfigError, match="patch size"):
        PatchOptions(size=4)
