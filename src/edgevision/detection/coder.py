"""Box coders: how a detector's regression outputs relate to its anchors.

:class:`BoxCoder` is the interface the matcher-based training targets and every detector's decode
use; :class:`SSDBoxCoder` is SSD's centre-size coder (Liu et al., SSD, Sec. 2.2), variances 0.1 /
0.2, which FaceBoxes uses. A grid (YOLO-style) coder implements the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from edgevision.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh


class BoxCoder(Protocol):
    """Encodes ground-truth boxes as regression targets relative to anchors, and decodes back."""

    def encode(self, boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``(A, 4)`` xyxy boxes matched to ``(A, 4)`` cxcywh anchors -> ``(A, 4)`` targets."""
        ...

    def decode(self, offsets: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``(..., A, 4)`` regression outputs on ``(A, 4)`` cxcywh anchors -> ``(..., A, 4)`` xyxy."""
        ...


@dataclass(frozen=True)
class SSDBoxCoder:
    """SSD's centre-size coder.

    ``t_xy = (c_box - c_anchor) / (v_c * wh_anchor)``, ``t_wh = log(wh_box / wh_anchor) / v_s``.
    """

    center_variance: float = 0.1
    size_variance: float = 0.2

    def encode(self, boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``(A, 4)`` xyxy boxes matched to ``(A, 4)`` cxcywh anchors -> ``(A, 4)`` offsets."""
        cxcywh = xyxy_to_cxcywh(boxes)
        t_xy = (cxcywh[:, :2] - anchors[:, :2]) / (self.center_variance * anchors[:, 2:])
        t_wh = torch.log(cxcywh[:, 2:].clamp(min=1e-6) / anchors[:, 2:]) / self.size_variance
        return torch.cat([t_xy, t_wh], dim=1)

    def decode(self, offsets: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``(..., A, 4)`` offsets on ``(A, 4)`` cxcywh anchors -> ``(..., A, 4)`` xyxy boxes."""
        xy = anchors[:, :2] + offsets[..., :2] * self.center_variance * anchors[:, 2:]
        wh = anchors[:, 2:] * torch.exp(offsets[..., 2:] * self.size_variance)
        return cxcywh_to_xyxy(torch.cat([xy, wh], dim=-1))


@dataclass(frozen=True)
class LandmarkCoder:
    """RetinaFace's landmark coder (Deng et al., RetinaFace, Sec. 3.2): each point is an offset
    from the anchor's centre in units of ``variance`` anchor sizes,
    ``t = (p - c_anchor) / (variance * wh_anchor)``, ten values per anchor in
    ``(x0, y0, x1, y1, ...)`` order. ``variance`` is the box coder's centre variance (0.1).
    """

    variance: float = 0.1

    def encode(self, points: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``(A, P, 2)`` pixel points matched to ``(A, 4)`` cxcywh anchors -> ``(A, 2P)`` offsets."""
        offsets = (points - anchors[:, None, :2]) / (self.variance * anchors[:, None, 2:])
        return offsets.reshape(points.shape[0], -1)

    def decode(self, offsets: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``(..., A, 2P)`` offsets on ``(A, 4)`` cxcywh anchors -> ``(..., A, P, 2)`` pixels."""
        points = offsets.reshape(*offsets.shape[:-1], -1, 2)
        return anchors[:, None, :2] + points * self.variance * anchors[:, None, 2:]
