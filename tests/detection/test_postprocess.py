"""Post-processing against a numpy re-implementation of FaceBoxes.PyTorch's test pipeline
(``test.py``: decode, ``conf > 0.05``, top-k 5000, ``py_cpu_nms`` at 0.3, keep 750), and the
:class:`Detections` value type.

One known difference: the reference ``py_cpu_nms`` measures areas and overlaps with ``+1`` pixel
(``(x2 - x1 + 1) * (y2 - y1 + 1)``), torchvision's ``nms`` (ours) does not. The two agree whenever
no compared pair's IoU lies on different sides of the threshold under the two conventions. So the
dense random case is compared (1) with the reference run with unit areas, every stage exercised, and
(2) with the true +1 reference after the boxes of every such ambiguous pair are scored out;
``test_plus_one_nms_difference`` shows a pair on which the two conventions disagree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgevision.detection.anchors import generate_anchors
from edgevision.detection.coder import SSDBoxCoder
from edgevision.detection.detections import Detections
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import ShapeError
from edgevision.models.faceboxes import FaceBoxesConfig


def py_cpu_nms(dets: np.ndarray, thresh: float, plus_one: float = 1.0) -> list[int]:
    """The Fast R-CNN / FaceBoxes.PyTorch CPU NMS; ``plus_one=0`` gives torchvision's areas."""
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1 + plus_one) * (y2 - y1 + plus_one)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + plus_one)
        h = np.maximum(0.0, yy2 - yy1 + plus_one)
        inter = w * h
        overlap = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(overlap <= thresh)[0] + 1]
    return keep


def reference_test_pipeline(
    loc: np.ndarray,
    probs: np.ndarray,
    priors: np.ndarray,
    image_size: tuple[int, int],
    resize: float,
    plus_one: float = 1.0,
) -> np.ndarray:
    """test.py after the forward pass: ``(K, 5)`` float32 rows ``x1 y1 x2 y2 score``. ``priors``
    are PriorBox's normalised ``(cx, cy, w, h)``; ``image_size`` is the resized input's ``(H, W)``."""
    height, width = image_size
    boxes = np.concatenate(
        [priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:], priors[:, 2:] * np.exp(loc[:, 2:] * 0.2)], 1
    )
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    boxes = boxes * np.array([width, height, width, height]) / resize
    scores = probs[:, 1]
    inds = np.where(scores > 0.05)[0]
    boxes, scores = boxes[inds], scores[inds]
    order = scores.argsort()[::-1][:5000]
    boxes, scores = boxes[order], scores[order]
    dets = np.hstack((boxes, scores[:, np.newaxis])).astype(np.float32, copy=False)
    dets = dets[py_cpu_nms(dets, 0.3, plus_one)]
    return dets[:750]


def ambiguous_under_plus_one(boxes: np.ndarray, thresh: float = 0.3, margin: float = 1e-4) -> np.ndarray:
    """``(N,)`` bool: boxes in some pair whose IoU is on different sides of ``thresh`` (or within
    ``margin`` of it) with and without the reference's +1 pixel."""
    boxes = boxes.astype(np.float64)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    flagged = np.zeros(len(boxes), dtype=bool)
    for start in range(0, len(boxes), 1024):
        block = boxes[start : start + 1024]
        iw = np.minimum(block[:, None, 2], boxes[None, :, 2]) - np.maximum(
            block[:, None, 0], boxes[None, :, 0]
        )
        ih = np.minimum(block[:, None, 3], boxes[None, :, 3]) - np.maximum(
            block[:, None, 1], boxes[None, :, 1]
        )
        iou = []
        for one in (0.0, 1.0):
            inter = np.maximum(iw + one, 0) * np.maximum(ih + one, 0)
            areas = (widths + one) * (heights + one)
            iou.append(inter / (areas[start : start + 1024, None] + areas[None, :] - inter))
        low, high = np.minimum(*iou), np.maximum(*iou)
        flagged[start : start + 1024] = ((low <= thresh + margin) & (high > thresh - margin)).any(axis=1)
    return flagged


@pytest.fixture(scope="module")
def random_outputs() -> dict:
    """Seeded head outputs for a 960 x 1280 image run at resize 0.5 (a 480 x 640 input)."""
    size, resize = (480, 640), 0.5
    anchors = generate_anchors(FaceBoxesConfig().anchor_levels, size)
    generator = torch.Generator().manual_seed(0)
    loc = torch.randn(len(anchors), 4, generator=generator) * 0.7
    probs = torch.softmax(torch.randn(len(anchors), 2, generator=generator) * 2, dim=1)
    height, width = size
    priors = anchors.double().numpy() / np.array([width, height, width, height])
    return {"size": size, "resize": resize, "anchors": anchors, "priors": priors, "loc": loc, "probs": probs}


def run_both(outputs: dict, probs: torch.Tensor, plus_one: float) -> tuple[Detections, np.ndarray]:
    boxes = SSDBoxCoder().decode(outputs["loc"], outputs["anchors"]) / outputs["resize"]
    ours = PostProcess()(boxes, probs[:, 1])
    reference = reference_test_pipeline(
        outputs["loc"].double().numpy(),
        probs.double().numpy(),
        outputs["priors"],
        outputs["size"],
        outputs["resize"],
        plus_one,
    )
    assert ours.boxes.dtype == torch.float32 and ours.scores.dtype == torch.float32
    assert bool((ours.scores[:-1] >= ours.scores[1:]).all())
    return ours, reference


def assert_same(ours: Detections, reference: np.ndarray) -> None:
    assert len(ours) == len(reference)
    np.testing.assert_array_equal(ours.scores.numpy(), reference[:, 4])
    np.testing.assert_allclose(ours.boxes.numpy(), reference[:, :4], rtol=0, atol=1e-3)


def test_postprocess_equals_reference_pipeline_with_unit_areas(random_outputs: dict) -> None:
    """Every stage on dense random outputs, against the reference with torchvision's areas."""
    probs = random_outputs["probs"]
    ours, reference = run_both(random_outputs, probs, plus_one=0.0)
    assert (probs[:, 1] > 0.05).sum() > 5000  # top-k is exercised
    assert len(reference) == 750  # so is keep
    assert_same(ours, reference)


def test_postprocess_equals_faceboxes_pytorch_where_plus_one_cannot_matter(random_outputs: dict) -> None:
    """The same outputs with the boxes of every ambiguous pair scored 0: the reference's +1 areas
    then cannot change an NMS decision, and ours must equal FaceBoxes.PyTorch exactly."""
    outputs, probs = random_outputs, random_outputs["probs"].clone()
    candidates = torch.nonzero(probs[:, 1] > 0.05).flatten()
    boxes = (
        SSDBoxCoder().decode(outputs["loc"][candidates], outputs["anchors"][candidates]) / outputs["resize"]
    )
    ambiguous = candidates[torch.from_numpy(ambiguous_under_plus_one(boxes.numpy()))]
    assert 0 < len(ambiguous) < len(candidates) // 2
    probs[ambiguous] = torch.tensor([1.0, 0.0])

    ours, reference = run_both(outputs, probs, plus_one=1.0)
    _, unit_areas = run_both(outputs, probs, plus_one=0.0)
    np.testing.assert_array_equal(reference, unit_areas)  # the precondition, checked
    assert len(reference) == 750
    assert_same(ours, reference)


def test_postprocess_small_settings_by_hand() -> None:
    anchors = torch.tensor([[50.0, 50.0, 20.0, 20.0], [52.0, 50.0, 20.0, 20.0], [150.0, 50.0, 20.0, 20.0]])
    anchors = torch.cat([anchors, torch.tensor([[250.0, 50.0, 20.0, 20.0]])])
    scores = torch.tensor([0.9, 0.8, 0.04, 0.7])
    post = PostProcess(confidence=0.05, top_k=3, nms_iou=0.3, keep=10)
    boxes = SSDBoxCoder().decode(torch.zeros(4, 4), anchors)  # the anchors themselves
    detections = post(boxes / 2.0, scores)
    # Anchor 2 is below the confidence; anchor 1 overlaps anchor 0 by 18/22 and is suppressed.
    torch.testing.assert_close(detections.scores, torch.tensor([0.9, 0.7]))
    torch.testing.assert_close(
        detections.boxes, torch.tensor([[20.0, 20.0, 30.0, 30.0], [120.0, 20.0, 130.0, 30.0]])
    )
    assert len(PostProcess(keep=1)(boxes, scores)) == 1
    assert len(PostProcess(top_k=1)(boxes, scores)) == 1
    nothing = PostProcess(confidence=0.95)(boxes, scores)
    assert len(nothing) == 0 and nothing.boxes.shape == (0, 4)


def test_plus_one_nms_difference() -> None:
    """Two 10 px boxes overlapping 4.5 px: IoU 45/155 = 0.29 without +1 (both kept, as torchvision
    does) but 60.5/181.5 = 0.33 with it (the reference suppresses the second)."""
    dets = np.array([[0, 0, 10, 10, 0.9], [5.5, 0, 15.5, 10, 0.8]], dtype=np.float32)
    assert py_cpu_nms(dets, 0.3) == [0]
    assert py_cpu_nms(dets, 0.3, plus_one=0.0) == [0, 1]
    anchors = torch.tensor([[5.0, 5.0, 10.0, 10.0], [10.5, 5.0, 10.0, 10.0]])
    ours = PostProcess()(SSDBoxCoder().decode(torch.zeros(2, 4), anchors), torch.tensor([0.9, 0.8]))
    assert len(ours) == 2


# ---- Detections ----


def make_detections() -> Detections:
    boxes = torch.tensor([[0.0, 0.0, 9.0, 19.0], [10.0, 10.0, 20.0, 30.0], [5.0, 6.0, 7.0, 8.0]])
    return Detections(boxes, torch.tensor([0.9, 0.5, 0.2]))


def test_detections_indexing_keeps_2d() -> None:
    dets = make_detections()
    assert len(dets) == 3
    for index, rows in [(0, [0]), (1, [1]), (-1, [2]), (-2, [1]), (slice(1, None), [1, 2])]:
        picked = dets[index]
        assert picked.boxes.shape == (len(rows), 4)
        torch.testing.assert_close(picked.boxes, dets.boxes[rows])
        torch.testing.assert_close(picked.scores, dets.scores[rows])
    assert dets[torch.tensor([True, False, True])].scores.tolist() == pytest.approx([0.9, 0.2])
    assert dets[torch.tensor([2, 0])].scores.tolist() == pytest.approx([0.2, 0.9])


def test_detections_numpy_integer_index_keeps_2d() -> None:
    assert make_detections()[np.int64(1)].boxes.shape == (1, 4)


def test_detections_above_is_inclusive() -> None:
    dets = make_detections()
    assert dets.above(0.5).scores.tolist() == pytest.approx([0.9, 0.5])
    assert len(dets.above(0.95)) == 0 and dets.above(0.95).boxes.shape == (0, 4)


def test_detections_to_xywh_rows_and_json() -> None:
    rows = make_detections().to_xywh_rows()
    assert rows[0] == pytest.approx([0.0, 0.0, 10.0, 20.0, 0.9])
    assert rows[1] == pytest.approx([10.0, 10.0, 11.0, 21.0, 0.5])
    assert rows[2] == pytest.approx([5.0, 6.0, 3.0, 3.0, 0.2])
    assert make_detections().to_json()[1] == {"box": [10.0, 10.0, 20.0, 30.0], "score": 0.5}
    assert Detections.empty().to_xywh_rows() == []


def test_detections_validates_shapes() -> None:
    with pytest.raises(ShapeError, match=r"\(N, 4\)"):
        Detections(torch.zeros(3, 5), torch.zeros(3))
    with pytest.raises(ShapeError, match="scores"):
        Detections(torch.zeros(3, 4), torch.zeros(2))
