"""Identity folders: natural class order, people selection, grey images as three channels, face
crops vs aligned faces, reproducible augmentation, and one-line refusals of unusable folders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.data.face_augment import FaceAugment
from edgevision.data.identity_folders import IdentityFolders, natural_key, select_people
from edgevision.data.paths import default_data_dir
from edgevision.data.preprocessing import FACE_RGB
from edgevision.errors import ConfigError, DatasetError

ORL = default_data_dir() / "orl_faces"


def make_people(
    root: Path, names: list[str], per_person: int = 1, size: tuple[int, int] = (112, 112)
) -> None:
    """One folder per name with ``per_person`` grey PNGs of ``size`` (w, h), each a flat grey."""
    for p, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_person):
            cv2.imwrite(str(root / name / f"{i}.png"), np.full(size[::-1], 10 * p + i, np.uint8))


def test_natural_order_puts_s2_before_s10(tmp_path) -> None:
    names = ["s10", "s2", "s1", "s21", "s3"]
    make_people(tmp_path, names)
    (tmp_path / "README").write_text("not a person")  # files at the top are not people
    assert sorted(names, key=natural_key) == ["s1", "s2", "s3", "s10", "s21"]
    assert IdentityFolders(tmp_path, FACE_RGB).classes == ["s1", "s2", "s3", "s10", "s21"]


@pytest.mark.parametrize(
    ("spec", "chosen"),
    [
        (None, ["s1", "s2", "s3", "s10", "s11"]),
        ("1-3", ["s1", "s2", "s3"]),
        ("4", ["s10"]),
        ("5, 1-2", ["s1", "s2", "s11"]),  # natural order, whatever the spec's
        ("s10,2", ["s2", "s10"]),  # a name and a position
        ("1-3,2-4", ["s1", "s2", "s3", "s10"]),  # overlaps select once
    ],
)
def test_people_are_positions_in_natural_order_or_names(spec, chosen) -> None:
    assert select_people(["s1", "s2", "s3", "s10", "s11"], spec) == chosen


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("3-1", ["runs backwards", "1-3"]),
        ("0", ["outside positions 1-5"]),
        ("4-6", ["outside positions 1-5"]),
        ("alice", ["no folder 'alice'"]),
        ("1,,2", ["empty entry"]),
    ],
)
def test_bad_people_specs_are_refused_in_one_line(spec, words) -> None:
    with pytest.raises(ConfigError) as info:
        select_people(["s1", "s2", "s3", "s10", "s11"], spec)
    assert all(w in str(info.value) for w in words) and "\n" not in str(info.value)


def test_labels_follow_the_selected_people(tmp_path) -> None:
    make_people(tmp_path, ["s1", "s2", "s3", "s10"], per_person=2)
    data = IdentityFolders(tmp_path, FACE_RGB, people="2-4")
    assert data.classes == ["s2", "s3", "s10"]
    assert [(p.parent.name, label) for p, label in data.samples] == [
        ("s2", 0), ("s2", 0), ("s3", 1), ("s3", 1), ("s10", 2), ("s10", 2)
    ]  # fmt: skip


def test_grey_images_become_three_equal_channels_of_the_network_input(tmp_path) -> None:
    make_people(tmp_path, ["a", "b"])
    grey = np.arange(112 * 112, dtype=np.uint32).reshape(112, 112) % 256
    cv2.imwrite(str(tmp_path / "b" / "1.pgm"), grey.astype(np.uint8))  # a second format
    data = IdentityFolders(tmp_path, FACE_RGB)
    assert len(data) == 3
    image, label = data[2]
    assert label == 1 and image.shape == (3, 112, 112)
    expected = (grey.astype(np.float32) - 127.5) / 128.0  # FACE_RGB: (x - 127.5) / 128
    for channel in image.numpy():
        np.testing.assert_array_equal(channel, expected)


def test_face_crops_go_through_face_input_and_others_must_be_aligned(tmp_path) -> None:
    make_people(tmp_path, ["a", "b"], size=(92, 112))  # ORL's size
    with pytest.raises(DatasetError, match=r"0\.png is 92x112, not an aligned 112x112 face; .*--crops"):
        IdentityFolders(tmp_path, FACE_RGB)
    seen = []

    def face_input(image: np.ndarray) -> np.ndarray:
        seen.append(image.shape)
        return cv2.resize(image, (112, 112))

    image, _ = IdentityFolders(tmp_path, FACE_RGB, face_input=face_input)[1]
    assert seen == [(112, 92, 3)] and image.shape == (3, 112, 112)
    assert float(image[0, 0, 0]) == pytest.approx((10 - 127.5) / 128)  # person 1's flat grey


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path) -> None:
    make_people(tmp_path, ["a", "b"], per_person=2)
    (tmp_path / "a" / "0.png").unlink()
    cv2.imwrite(
        str(tmp_path / "a" / "0.png"), np.random.default_rng(0).integers(0, 256, (112, 112), np.uint8)
    )
    one = IdentityFolders(tmp_path, FACE_RGB, augment=FaceAugment(), seed=3)
    two = IdentityFolders(tmp_path, FACE_RGB, augment=FaceAugment(), seed=3)
    np.testing.assert_array_equal(one[0][0], two[0][0])
    two.set_epoch(1)
    assert not np.array_equal(one[0][0], two[0][0])


def test_face_augment_mirrors_exactly_and_says_so() -> None:
    image = np.random.default_rng(1).integers(0, 256, (112, 112, 3), np.uint8)
    still = FaceAugment(flip=0.0, scale=0, shift=0, brightness=0, contrast=0)
    mirror = FaceAugment(flip=1.0, scale=0, shift=0, brightness=0, contrast=0)
    same, flipped = still(image, np.random.default_rng(0))
    np.testing.assert_array_equal(same, image)
    assert not flipped
    mirrored, flipped = mirror(image, np.random.default_rng(0))
    np.testing.assert_array_equal(mirrored, image[:, ::-1])
    assert flipped
    with pytest.raises(ConfigError, match="flip must be a finite number"):
        FaceAugment(flip=float("nan"))


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ([], r"0 person folder\(s\) selected; identities need at least 2"),
        (["only"], r"1 person folder\(s\) selected"),
        (["a", "empty"], "person folder .*empty has no readable image"),
        (["a", "corrupt"], "person folder .*corrupt has no readable image"),
    ],
)
def test_unusable_folders_are_refused_in_one_line(tmp_path, layout, words) -> None:
    for name in layout:
        (tmp_path / name).mkdir()
        if name in ("a", "only"):
            cv2.imwrite(str(tmp_path / name / "0.png"), np.zeros((112, 112), np.uint8))
        if name == "corrupt":
            (tmp_path / name / "0.png").write_bytes(b"not a png")
            (tmp_path / name / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=words) as info:
        IdentityFolders(tmp_path, FACE_RGB)
    assert "\n" not in str(info.value)


def test_a_missing_root_is_refused(tmp_path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        IdentityFolders(tmp_path / "none", FACE_RGB)


@pytest.mark.skipif(not ORL.is_dir(), reason=f"ORL faces not found at {ORL}")
def test_orl_reads_as_40_people_of_10_images_in_natural_order() -> None:
    data = IdentityFolders(ORL, FACE_RGB, people="1-30", face_input=lambda im: cv2.resize(im, (112, 112)))
    assert data.classes == [f"s{i}" for i in range(1, 31)] and len(data) == 300 and not data.skipped
    assert [p.name for p, _ in data.samples[:10]] == [f"{i}.pgm" for i in range(1, 11)]
    assert IdentityFolders(ORL, FACE_RGB, people="31-40", face_input=lambda im: im).classes[0] == "s31"


def test_unreadable_images_beside_readable_ones_are_skipped_and_listed(tmp_path) -> None:
    make_people(tmp_path, ["a", "b"])
    (tmp_path / "a" / "1.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "a" / "notes.txt").write_text("not an image, not counted")
    data = IdentityFolders(tmp_path, FACE_RGB)
    assert [p.name for p, _ in data.samples] == ["0.png", "0.png"]
    assert data.skipped == [tmp_path / "a" / "1.jpg"]
