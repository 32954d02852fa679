"""Anchor matching on hand-built boxes whose IoUs are exact in float32."""

from __future__ import annotations

import torch

from edgevision.boxes import intersection_over_first, pairwise_iou
from edgevision.detection.matcher import BACKGROUND, AnchorMatcher

B = BACKGROUND

# Anchors (xyxy) and the IoU each has with its face, by construction:
ANCHORS = torch.tensor(
    [
        [0.0, 0.0, 70.0, 10.0],  # 0: face 0, IoU 1
        [0.0, 0.0, 200.0, 10.0],  # 1: face 0, IoU 700 / 2000 = 0.35 exactly -> positive (>=)
        [0.0, 0.0, 201.0, 10.0],  # 2: face 0, IoU 700 / 2010 < 0.35 -> background
        [500.0, 500.0, 600.0, 600.0],  # 3: overlaps nothing
        [1000.0, 1000.0, 1010.0, 1030.0],  # 4: face 1, IoU 1/3: its best anchor, forced positive
        [2000.0, 2000.0, 2010.0, 2060.0],  # 5: face 2, IoU 1/6 < 0.2: face 2 left unmatched
    ]
)
FACES = torch.tensor(
    [[0.0, 0.0, 70.0, 10.0], [1000.0, 1000.0, 1010.0, 1010.0], [2000.0, 2000.0, 2010.0, 2010.0]]
)


def test_iou_construction() -> None:
    iou = pairwise_iou(FACES, ANCHORS)
    torch.testing.assert_close(iou[0, :3], torch.tensor([1.0, 0.35, 700 / 2010]))
    torch.testing.assert_close(iou[1, 4], torch.tensor(1 / 3))
    torch.testing.assert_close(iou[2, 5], torch.tensor(1 / 6))


def test_thresholds_forcing_and_unmatched() -> None:
    match = AnchorMatcher()(FACES, ANCHORS)
    assert match.dtype == torch.long
    assert match.tolist() == [0, 0, B, B, 1, B]


def test_forced_match_needs_min_forced_iou() -> None:
    # With the forcing floor raised above 1/3, face 1 is left unmatched too.
    assert AnchorMatcher(min_forced_iou=0.34)(FACES, ANCHORS).tolist() == [0, 0, B, B, B, B]
    # With it lowered below 1/6, face 2 is forced onto anchor 5.
    assert AnchorMatcher(min_forced_iou=0.1)(FACES, ANCHORS).tolist() == [0, 0, B, B, 1, 2]


def test_anchor_goes_to_best_face_and_later_face_wins_shared_best_anchor() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 20.0]])
    # Face 0 overlaps anchor 0 by 1/2 and anchor 1 by 1/4; face 1 overlaps anchor 0 by 1/4 and
    # anchor 1 by 3/4. Each face's best anchor differs: anchor 0 -> face 0, anchor 1 -> face 1.
    faces = torch.tensor([[0.0, 0.0, 10.0, 5.0], [0.0, 5.0, 10.0, 20.0]])
    assert AnchorMatcher()(faces, anchors).tolist() == [0, 1]
    # Both faces' best anchor is anchor 0 (IoU 0.9 and 0.85): the later face takes it although the
    # earlier overlaps it more (the reference loop); anchor 1 (0.45 vs 0.425) goes to face 0.
    faces = torch.tensor([[0.0, 0.0, 9.0, 10.0], [0.0, 0.0, 10.0, 8.5]])
    assert AnchorMatcher()(faces, anchors).tolist() == [1, 0]


def test_empty_ground_truth() -> None:
    match = AnchorMatcher()(torch.zeros((0, 4)), ANCHORS)
    assert match.dtype == torch.long
    assert match.tolist() == [B] * 6


def test_intersection_over_first() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 30.0]])
    region = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    torch.testing.assert_close(intersection_over_first(boxes, region), torch.tensor([[1.0], [0.25], [0.0]]))
