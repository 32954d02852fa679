"""From decoded boxes and scores to :class:`Detections`: threshold, top-k, NMS, keep."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import nms

from edgevision.detection.detections import Detections
from edgevision.errors import ConfigError
from edgevision.validation import check_number


@dataclass(frozen=True)
class PostProcess:
    """The reference test settings of FaceBoxes.PyTorch.

    Attributes:
        confidence: drop boxes scoring below this (0.05).
        top_k: keep this many best boxes before NMS (5000).
        nms_iou: NMS IoU threshold (0.3).
        keep: keep this many boxes after NMS (750).
    """

    confidence: float = 0.05
    top_k: int = 5000
    nms_iou: float = 0.3
    keep: int = 750

    def __post_init__(self) -> None:
        check_number("confidence", self.confidence, 0.0, 1.0)
        check_number("nms_iou", self.nms_iou, 0.0, 1.0)
        for name in ("top_k", "keep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")

    def __call__(
        self, boxes: torch.Tensor, scores: torch.Tensor, landmarks: torch.Tensor | None = None
    ) -> Detections:
        """``(K, 4)`` xyxy boxes and their ``(K,)`` scores (every pyramid scale's, in the image's
        pixels), and optionally each box's own ``(K, 5, 2)`` landmarks -> the detections kept,
        best first."""
        candidates = torch.nonzero(scores > self.confidence).flatten()
        order = scores[candidates].argsort(descending=True)[: self.top_k]
        candidates = candidates[order]
        # Indices into the inputs, so each kept box takes its own landmarks.
        kept = candidates[nms(boxes[candidates], scores[candidates], self.nms_iou)[: self.keep]]
        return Detections(
            boxes[kept].float().contiguous(),
            scores[kept].float().contiguous(),
            None if landmarks is None else landmarks[kept].float().contiguous(),
        )
