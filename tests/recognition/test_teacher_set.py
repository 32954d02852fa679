"""The distillation set: one-to-one matching by hand, a real build on two WIDER train images, the
file round trip and its refusals."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgevision.errors import DatasetError
from edgevision.recognition.dlib_peer import dlib_available
from edgevision.recognition.teacher_set import (
    TeacherSet,
    build_teacher_set,
    load_teacher_set,
    save_teacher_set,
)

IMAGES = (
    "1--Handshaking/1_Handshaking_Handshaking_1_105.jpg",
    "1--Handshaking/1_Handshaking_Handshaking_1_113.jpg",
)


@pytest.fixture
def two_image_wider(tmp_path: Path, data_dir: Path) -> Path:
    """A WIDER FACE root holding two real train images and their official annotations."""
    source = data_dir / "widerface"
    lines = (source / "wider_face_split/wider_face_train_bbx_gt.txt").read_text().splitlines()
    kept: list[str] = []
    for name in IMAGES:
        start = lines.index(name)
        kept += lines[start : start + 2 + int(lines[start + 1])]
        (tmp_path / "WIDER_train/images" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "WIDER_train/images" / name, tmp_path / "WIDER_train/images" / name)
    (tmp_path / "wider_face_split").mkdir()
    (tmp_path / "wider_face_split/wider_face_train_bbx_gt.txt").write_text("\n".join(kept) + "\n")
    return tmp_path


@pytest.mark.skipif(not dlib_available(), reason="dlib peer not installed (edgevision[dlib])")
def test_build_on_real_faces(two_image_wider: Path, shared_weights, tmp_path: Path):
    yunet = shared_weights("yunet/yunet_n_dynamic.onnx")
    seen = []
    teacher_set = build_teacher_set(
        two_image_wider, yunet, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1, 2), (2, 2)]
    # Seven labelled faces, all at least 54 px wide; YuNet finds most of them.
    assert 4 <= len(teacher_set) <= 7
    assert all(s.split("#")[0] in {n.rsplit(".", 1)[0] for n in IMAGES} for s in teacher_set.sources)
    # A face and its mirror are the same person by dlib's own rule; two people are not.
    same = np.linalg.norm(teacher_set.embeddings - teacher_set.embeddings_flipped, axis=1)
    assert (same < 0.6).all()
    distances = np.linalg.norm(teacher_set.embeddings[:, None] - teacher_set.embeddings[None], axis=2)
    assert (distances[~np.eye(len(teacher_set), dtype=bool)] > same.max()).mean() > 0.8
    assert teacher_set.crops.std() > 20  # image pixels, not a border fill
    path = tmp_path / "set.npz"
    save_teacher_set(teacher_set, path)
    loaded = load_teacher_set(path)
    np.testing.assert_array_equal(loaded.crops, teacher_set.crops)
    np.testing.assert_array_equal(loaded.embeddings_flipped, teacher_set.embeddings_flipped)
    np.testing.assert_array_equal(loaded.sources, teacher_set.sources)


def test_bad_files_and_values_are_refused(tmp_path: Path):
    with pytest.raises(DatasetError, match="not found"):
        load_teacher_set(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(DatasetError, match="is not a teacher set"):
        load_teacher_set(tmp_path / "text.npz")
    np.savez(tmp_path / "partial.npz", crops=np.zeros((1, 112, 112, 3), np.uint8))
    with pytest.raises(DatasetError, match="is not a teacher set"):
        load_teacher_set(tmp_path / "partial.npz")
    good = dict(
        crops=np.zeros((2, 112, 112, 3), np.uint8),
        embeddings=np.zeros((2, 128), np.float32),
        embeddings_flipped=np.zeros((2, 128), np.float32),
        sources=np.array(["a#0", "b#1"]),
    )
    with pytest.raises(DatasetError, match="NaN"):
        TeacherSet(**{**good, "embeddings": np.full((2, 128), np.nan, np.float32)})
    with pytest.raises(DatasetError, match=r"crops is \(2, 96, 96, 3\)"):
        TeacherSet(**{**good, "crops": np.zeros((2, 96, 96, 3), np.uint8)})
