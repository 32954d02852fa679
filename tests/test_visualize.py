"""Drawing detections: boxes, and landmarks as dots when the detections have them."""

from __future__ import annotations

import numpy as np
import torch

from edgevision.detection.detections import Detections
from edgevision.visualize import draw_detections

POINTS = [[40.0, 50.0], [70.0, 50.0], [55.0, 65.0], [45.0, 80.0], [65.0, 80.0]]


def test_landmarks_are_drawn_as_dots_at_their_pixels_and_only_when_present() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    boxes, scores = torch.tensor([[20.0, 30.0, 90.0, 110.0]]), torch.tensor([0.9])
    with_points = draw_detections(image, Detections(boxes, scores, torch.tensor([POINTS])), (0, 0, 255))
    without = draw_detections(image, Detections(boxes, scores), (0, 0, 255))
    for x, y in POINTS:
        assert with_points[int(y), int(x)].tolist() == [0, 0, 255]
        assert without[int(y), int(x)].tolist() == [0, 0, 0]
    # A dot is small: 2 px around its point, nothing 4 px away (inside the box, off the other dots).
    assert with_points[50, 40 + 2].tolist() == [0, 0, 255] and with_points[50, 40 + 4].tolist() == [0, 0, 0]
    assert without[30, 50].tolist() == [0, 0, 255]  # the box is drawn in both
    assert image.max() == 0  # the input is not drawn on
