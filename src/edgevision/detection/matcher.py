"""Anchor-to-ground-truth matching (SSD's matching strategy as FaceBoxes uses it, Sec. 3.4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgevision.boxes import pairwise_iou

BACKGROUND = -1


@dataclass(frozen=True)
class AnchorMatcher:
    """Assigns each anchor a ground-truth box or background.

    Attributes:
        positive_iou: an anchor whose best IoU with a face is at least this is positive (0.35).
        min_forced_iou: each face is forced onto its best anchor, unless even that anchor overlaps
            it less than this (0.2 in FaceBoxes.PyTorch: such faces are left unmatched).
    """

    positive_iou: float = 0.35
    min_forced_iou: float = 0.2

    def __call__(self, gt_boxes: torch.Tensor, anchors_xyxy: torch.Tensor) -> torch.Tensor:
        """Match ``(G, 4)`` xyxy faces to ``(A, 4)`` xyxy anchors.

        Returns:
            ``(A,)`` int64: the index of the matched face, or ``BACKGROUND`` (-1).
        """
        num_anchors = anchors_xyxy.shape[0]
        if gt_boxes.numel() == 0:
            return torch.full((num_anchors,), BACKGROUND, dtype=torch.long, device=anchors_xyxy.device)
        iou = pairwise_iou(gt_boxes, anchors_xyxy)  # (G, A)
        best_gt_iou, best_gt = iou.max(dim=0)
        best_anchor_iou, best_anchor = iou.max(dim=1)
        forced = torch.nonzero(best_anchor_iou >= self.min_forced_iou).flatten()
        # Later faces win a shared best anchor, as in the reference loop.
        best_gt[best_anchor[forced]] = forced
        best_gt_iou[best_anchor[forced]] = 2.0
        return torch.where(best_gt_iou >= self.positive_iou, best_gt, torch.full_like(best_gt, BACKGROUND))
