"""Keypoint layouts, their projection by the body, and the keypoint file's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgevision.errors import EdgeVisionError, InputFileError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera, look_at
from edgevision.recon3d.keypoints import BODY20, COCO17, load_keypoints, predict_keypoints, project

# The COCO keypoint order (cocodataset.org, person_keypoints).
COCO_NAMES = (
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
    "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle"
).split()


def _camera() -> Camera:
    rotation, translation = look_at(np.array([0.4, 0.3, 2.5]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    return Camera(fx=500.0, fy=520.0, cx=160.0, cy=121.0, R=rotation, t=translation, width=320, height=240)


def test_coco_layout_order_and_sides(small_body: BodyModel) -> None:
    assert COCO17.names == tuple(COCO_NAMES)
    assert COCO17.joints[:5] == (None,) * 5  # the face points the body lacks
    columns, joints = COCO17.predicted(small_body.bone_names)
    assert columns.tolist() == list(range(5, 17))
    rest = small_body.joints[joints]
    left = torch.tensor([COCO17.names[c].startswith("left") for c in columns.tolist()])
    # the person's left is the body's +x: a left/right swap in the table fails here
    assert (rest[left, 0] > 0.05).all() and (rest[~left, 0] < -0.05).all()
    # top to bottom: shoulders above elbows above wrists; hips above knees above ankles
    heights = dict(zip((COCO17.names[c] for c in columns.tolist()), rest[:, 1].tolist()))
    assert heights["left_shoulder"] > heights["left_elbow"] > heights["left_wrist"]
    assert heights["left_hip"] > heights["left_knee"] > heights["left_ankle"]
    assert BODY20.predicted(small_body.bone_names)[1].tolist() == list(range(20))


def test_prediction_is_the_camera_projection_of_the_posed_joints(small_body: BodyModel) -> None:
    camera = _camera()
    pose = 0.3 * torch.randn(
        small_body.num_joints, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    posed = small_body(pose, translation=torch.tensor([0.05, -0.1, 0.2], dtype=torch.float64))
    for layout in (COCO17, BODY20):
        _, joints = layout.predicted(small_body.bone_names)
        expected, depth = camera.project(posed.joints[joints].numpy())
        assert (depth > 0).all()
        np.testing.assert_allclose(
            predict_keypoints(posed.joints, camera, joints).numpy(), expected, atol=1e-9
        )


def test_projection_gradient_matches_finite_differences() -> None:
    camera = _camera()
    points = torch.tensor([[0.1, 0.2, 0.3], [-0.2, 0.5, -0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: project(p, camera), (points,))


def test_keypoint_files_round_trip(tmp_path) -> None:
    keypoints = np.random.default_rng(0).uniform(0, 100, (4, 17, 3))
    np.save(tmp_path / "k.npy", keypoints)
    (tmp_path / "k.json").write_text(json.dumps(keypoints.tolist()))
    for name in ("k.npy", "k.json"):
        np.testing.assert_array_equal(load_keypoints(tmp_path / name, frames=4), keypoints)
    np.save(tmp_path / "b.npy", np.zeros((4, 20, 3)))
    assert load_keypoints(tmp_path / "b.npy", layout=BODY20).shape == (4, 20, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.zeros((4, 18, 3)), r"must have shape \(frames, 17, 3\).*got \(4, 18, 3\)"),
        (np.zeros((17, 3)), r"must have shape \(frames, 17, 3\)"),
        (np.zeros((4, 17, 2)), r"must have shape \(frames, 17, 3\)"),
        (np.full((4, 17, 3), np.nan), "NaN or inf"),
        (np.concatenate([np.zeros((4, 17, 2)), -np.ones((4, 17, 1))], axis=2), "negative confidences"),
        (np.array([["a"]]), "must hold numbers"),
    ],
)
def test_bad_keypoint_files_are_refused_in_one_line(tmp_path, content, message) -> None:
    path = tmp_path / "k.npy"
    np.save(path, content)
    with pytest.raises(InputFileError, match=message) as caught:
        load_keypoints(path)
    assert "\n" not in str(caught.value)


def test_frame_count_and_file_kind_are_checked(tmp_path) -> None:
    np.save(tmp_path / "k.npy", np.zeros((4, 17, 3)))
    with pytest.raises(InputFileError, match="has 4 frames, the video 5"):
        load_keypoints(tmp_path / "k.npy", frames=5)
    with pytest.raises(InputFileError, match=r"shape \(5, 17, 3\)"):
        np.save(tmp_path / "w.npy", np.zeros((5, 3, 3)))
        load_keypoints(tmp_path / "w.npy", frames=5)
    (tmp_path / "k.txt").write_text("0 0 1")
    (tmp_path / "ragged.json").write_text("[[[1, 2, 3]], [[1, 2]]]")
    (tmp_path / "broken.json").write_text("[[")
    (tmp_path / "bad.npy").write_text("not numpy")
    for name, message in [
        ("k.txt", "must be .npy or .json"),
        ("missing.npy", "not found"),
        ("missing.json", "not found"),
        ("ragged.json", "not a rectangular"),
        ("broken.json", "not JSON"),
        ("bad.npy", "not a .npy array"),
    ]:
        with pytest.raises(InputFileError, match=message) as caught:
            load_keypoints(tmp_path / name)
        assert isinstance(caught.value, EdgeVisionError) and "\n" not in str(caught.value)
