"""Drawing detections on images."""

from __future__ import annotations

import cv2
import numpy as np

from edgevision.detection.detections import Detections


def draw_detections(
    image: np.ndarray, detections: Detections, color: tuple[int, int, int] = (0, 255, 0)
) -> np.ndarray:
    """A copy of the ``(H, W, 3)`` uint8 BGR image with each box and its score drawn, and each
    face's landmarks, when the detections have them, as filled dots."""
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for (x1, y1, x2, y2), score in zip(detections.boxes.round().int().tolist(), detections.scores.tolist()):
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        cv2.putText(
            canvas,
            f"{score:.2f}",
            (x1, max(y1 - 4, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            color,
            thickness,
            cv2.LINE_AA,
        )
    if detections.landmarks is not None:
        for x, y in detections.landmarks.reshape(-1, 2).round().int().tolist():
            cv2.circle(canvas, (x, y), thickness + 1, color, cv2.FILLED)
    return canvas
