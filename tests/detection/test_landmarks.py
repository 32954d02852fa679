"""Landmarks through detection: RetinaFace's coder (hand-computed and round trip), the
:class:`Detections` value type, NMS keeping each box's own points (the pyramid: test_pyramid.py),
greedy pairing, and FaceBoxes' optional head (old weights still load strictly, the head's weights
bring it back)."""

from __future__ import annotations

import pytest
import torch

from edgevision.detection.coder import LandmarkCoder
from edgevision.detection.detections import Detections
from edgevision.detection.matcher import BACKGROUND, match_greedy
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import ShapeError, WeightsError
from edgevision.models import create_model, weights_options
from edgevision.models.checkpoint import save_checkpoint


def test_decode_is_the_anchor_centre_plus_variance_times_size_hand_computed() -> None:
    anchors = torch.tensor([[100.0, 50.0, 32.0, 64.0]])
    offsets = torch.tensor([[1.0, -2.0, 0.0, 0.0, 0.5, 0.5, -1.0, 1.0, 10.0, 0.0]])
    points = LandmarkCoder(0.1).decode(offsets, anchors)
    # x = 100 + t_x * 0.1 * 32, y = 50 + t_y * 0.1 * 64
    expected = [[103.2, 37.2], [100.0, 50.0], [101.6, 53.2], [96.8, 56.4], [132.0, 50.0]]
    assert points.shape == (1, 5, 2)
    torch.testing.assert_close(points[0], torch.tensor(expected), rtol=0, atol=1e-5)


def test_encode_then_decode_gives_the_points_back_batched_too() -> None:
    generator = torch.Generator().manual_seed(0)
    anchors = torch.cat(
        [torch.rand(50, 2, generator=generator) * 600, 16 + torch.rand(50, 2, generator=generator) * 300], 1
    )
    points = torch.rand(50, 5, 2, generator=generator) * 640
    coder = LandmarkCoder(0.1)
    encoded = coder.encode(points, anchors)
    assert encoded.shape == (50, 10)
    # Point-major order: (x0, y0, x1, y1, ...) as RetinaFace's outputs.
    torch.testing.assert_close(encoded[:, 2], (points[:, 1, 0] - anchors[:, 0]) / (0.1 * anchors[:, 2]))
    torch.testing.assert_close(coder.decode(encoded, anchors), points, rtol=0, atol=1e-3)
    batched = coder.decode(torch.stack([encoded, encoded]), anchors)
    assert batched.shape == (2, 50, 5, 2)
    torch.testing.assert_close(batched[1], points, rtol=0, atol=1e-3)


def make_detections(landmarks: bool = True) -> Detections:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 30.0], [5.0, 5.0, 8.0, 9.0]])
    points = torch.arange(30, dtype=torch.float32).reshape(3, 5, 2) if landmarks else None
    return Detections(boxes, torch.tensor([0.9, 0.5, 0.2]), points)


def test_detections_keep_landmarks_through_indexing_to_and_above() -> None:
    found = make_detections()
    assert torch.equal(found[1].landmarks, found.landmarks[1:2])
    assert torch.equal(found[torch.tensor([2, 0])].landmarks, found.landmarks[[2, 0]])
    assert torch.equal(found.above(0.5).landmarks, found.landmarks[:2])
    assert torch.equal(found.to("cpu").landmarks, found.landmarks)
    assert found[1:1].landmarks.shape == (0, 5, 2)
    assert make_detections(landmarks=False)[0].landmarks is None
    assert Detections.empty(landmarks=True).landmarks.shape == (0, 5, 2)
    assert Detections.empty().landmarks is None


def test_landmarks_of_the_wrong_shape_are_refused_in_one_line() -> None:
    with pytest.raises(ShapeError, match=r"landmarks must be \(3, 5, 2\), got \(3, 10\)"):
        Detections(make_detections().boxes, make_detections().scores, torch.zeros(3, 10))


def test_to_json_writes_landmarks_only_when_there_are_some() -> None:
    face = make_detections().to_json()[1]
    assert face == {
        "box": [10.0, 10.0, 20.0, 30.0],
        "score": 0.5,
        "landmarks": [[10.0, 11.0], [12.0, 13.0], [14.0, 15.0], [16.0, 17.0], [18.0, 19.0]],
    }
    assert "landmarks" not in make_detections(landmarks=False).to_json()[1]


def test_nms_keeps_each_surviving_box_with_its_own_landmarks() -> None:
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(300, 2, generator=generator) * 400
    boxes = torch.cat([corners, corners + 20 + torch.rand(300, 2, generator=generator) * 60], 1)
    scores = torch.rand(300, generator=generator)
    # Each box's points encode it: point k is its top-left corner plus (k, 2k).
    landmarks = boxes[:, None, :2] + torch.tensor([[k, 2.0 * k] for k in range(5)])
    found = PostProcess(confidence=0.1, keep=40)(boxes, scores, landmarks)
    assert 1 < len(found) <= 40 and found.landmarks is not None
    torch.testing.assert_close(
        found.landmarks, found.boxes[:, None, :2] + torch.tensor([[k, 2.0 * k] for k in range(5)])
    )
    without = PostProcess(confidence=0.1, keep=40)(boxes, scores)
    assert without.landmarks is None and torch.equal(without.boxes, found.boxes)


def test_greedy_pairing_takes_the_best_overlap_first() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    others = torch.tensor([[1.0, 0.0, 11.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    # Box 1 equals other 0 (IoU 1) and takes it, although box 0 comes first (IoU 0.82 with it).
    assert match_greedy(boxes, others, 0.5).tolist() == [BACKGROUND, 0, BACKGROUND]
    assert match_greedy(boxes[:1], others, 0.5).tolist() == [0]
    assert match_greedy(boxes[:1], others, 0.9).tolist() == [BACKGROUND]
    assert match_greedy(boxes, others[:0]).tolist() == [BACKGROUND] * 3


def test_faceboxes_head_is_optional_and_weights_files_say_which(tmp_path) -> None:
    plain = create_model("faceboxes")
    with_head = create_model("faceboxes", landmarks=True)
    assert plain.onnx_output_names == ("loc", "conf") and not any(
        k.startswith("landm.") for k in plain.state_dict()
    )
    assert with_head.onnx_output_names == ("loc", "conf", "landmarks")
    outputs = with_head.eval()(torch.zeros(1, 3, 128, 128))
    assert [tuple(o.shape) for o in outputs] == [(1, 341, 4), (1, 341, 2), (1, 341, 10)]
    # 4x4 cells of 21 anchors, 2x2 of 1, 1x1 of 1. The head: 1x1 convs of 10 values per anchor on
    # 128, 256 and 256 channels.
    added = sum(p.numel() for p in with_head.parameters()) - sum(p.numel() for p in plain.parameters())
    assert added == (128 + 1) * 210 + 2 * (256 + 1) * 10
    head_file, plain_file = tmp_path / "head.pth", tmp_path / "plain.pth"
    save_checkpoint(head_file, with_head.state_dict())
    save_checkpoint(plain_file, plain.state_dict())
    assert weights_options("faceboxes", head_file) == {"landmarks": True}
    assert weights_options("faceboxes", plain_file) == {}
    assert create_model("faceboxes", weights=head_file).config.landmarks
    assert not create_model("faceboxes", weights=plain_file).config.landmarks
    with pytest.raises(WeightsError, match="6 unexpected"):  # an explicit option still wins
        create_model("faceboxes", weights=head_file, landmarks=False)
    with pytest.raises(WeightsError, match="6 missing"):
        create_model("faceboxes", weights=plain_file, landmarks=True)
