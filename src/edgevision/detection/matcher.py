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


def match_greedy(boxes: torch.Tensor, others: torch.Tensor, min_iou: float = 0.5) -> torch.Tensor:
    """Pair ``(N, 4)`` xyxy boxes with ``(M, 4)`` xyxy ``others`` one to one, the highest IoU
    pair first, down to ``min_iou``.

    Returns:
        ``(N,)`` int64: the index of each box's partner in ``others``, or ``BACKGROUND`` (-1).
    """
    match = torch.full((len(boxes),), BACKGROUND, dtype=torch.long)
    if len(boxes) == 0 or len(others) == 0:
        return match
    iou = pairwise_iou(boxes.float(), others.float()).cpu()
    while True:
        best = int(iou.argmax())
        row, column = divmod(best, iou.shape[1])
        if iou[row, column] < min_iou:
            return match
        match[row] = column
        iou[row, :] = -1.0
        iou[:, column] = -1.0
