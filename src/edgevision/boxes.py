"""Box conversions and overlaps. Boxes inside edgevision are ``(N, 4)`` xyxy float32 pixels;
a face's landmarks are ``(5, 2)`` ``(x, y)`` pixels in the order :data:`LANDMARK_NAMES`.

A bottom-layer module: data (crop augmentation) and detection (coder, matcher, losses) both use it.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou

NUM_LANDMARKS = 5
# The five points' order (InsightFace's and YuNet's): left and right are the image's sides.
LANDMARK_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")
# Which point each becomes when the image is mirrored left-right: the eyes and the mouth corners swap.
MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` centre-size ``(cx, cy, w, h)`` to ``(N, 4)`` corners ``(x1, y1, x2, y2)``."""
    half = boxes[..., 2:] / 2
    return torch.cat([boxes[..., :2] - half, boxes[..., :2] + half], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` corners ``(x1, y1, x2, y2)`` to ``(N, 4)`` centre-size ``(cx, cy, w, h)``."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def pairwise_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU of every pair: ``(N, 4)`` and ``(M, 4)`` xyxy boxes give ``(N, M)`` in [0, 1]."""
    return box_iou(boxes_a, boxes_b)


def intersection_over_first(boxes: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Fraction of each box inside each region: ``(N, 4)``, ``(M, 4)`` xyxy give ``(N, M)``.

    This is "IoF" (intersection over the first box's area), used by crop augmentation to test
    whether a face lies wholly inside a crop.
    """
    top_left = torch.maximum(boxes[:, None, :2], regions[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1).clamp(min=1e-12)
    return inter / area[:, None]
