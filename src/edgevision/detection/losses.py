"""The multibox loss with hard negative mining (SSD Sec. 2.2; FaceBoxes Sec. 3.4), a dense
distillation loss for training a student against the outputs of a teacher with the same anchors,
a soft-target distillation loss against any teacher's detections (boxes with scores), and
RetinaFace's landmark loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgevision.boxes import cxcywh_to_xyxy
from edgevision.detection.coder import BoxCoder, LandmarkCoder
from edgevision.detection.matcher import BACKGROUND, AnchorMatcher


@dataclass(frozen=True)
class MultiBoxTargets:
    """Per-anchor training targets of a batch.

    Attributes:
        labels: ``(B, A)`` int64, 1 for a face anchor, 0 for background.
        offsets: ``(B, A, 4)`` encoded offsets of the matched face (zeros on background).
        landmarks: ``(B, A, 10)`` encoded landmarks of the matched face (zeros where
            ``landmark_mask`` is False), or None when no landmarks were given.
        landmark_mask: ``(B, A)`` bool: positive anchors whose face has landmarks, or None.
    """

    labels: torch.Tensor
    offsets: torch.Tensor
    landmarks: torch.Tensor | None = None
    landmark_mask: torch.Tensor | None = None


def build_targets(
    gt_boxes: list[torch.Tensor],
    anchors: torch.Tensor,
    matcher: AnchorMatcher,
    coder: BoxCoder,
    gt_landmarks: list[torch.Tensor] | None = None,
    landmark_coder: LandmarkCoder | None = None,
) -> MultiBoxTargets:
    """Match each image's ``(G_i, 4)`` xyxy faces to the ``(A, 4)`` cxcywh anchors; with
    ``gt_landmarks`` (each image's ``(G_i, 5, 2)`` pixels, NaN for a face without) and their
    ``landmark_coder``, also the landmark targets of the positive anchors whose face has them."""
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    labels, offsets, landmarks, masks = [], [], [], []
    for index, boxes in enumerate(gt_boxes):
        match = matcher(boxes, anchors_xyxy)
        positive = match != BACKGROUND
        matched = boxes[match.clamp(min=0)] if boxes.numel() else anchors_xyxy
        encoded = coder.encode(matched, anchors)
        offsets.append(torch.where(positive[:, None], encoded, torch.zeros_like(encoded)))
        labels.append(positive.long())
        if gt_landmarks is not None and landmark_coder is not None:
            points = gt_landmarks[index]
            if len(points):
                matched_points = points[match.clamp(min=0)]
            else:
                matched_points = torch.full((len(anchors), 5, 2), float("nan"), device=anchors.device)
            mask = positive & matched_points.isfinite().all(dim=2).all(dim=1)
            encoded_points = landmark_coder.encode(matched_points, anchors)
            landmarks.append(torch.where(mask[:, None], encoded_points, torch.zeros_like(encoded_points)))
            masks.append(mask)
    if not masks:
        return MultiBoxTargets(torch.stack(labels), torch.stack(offsets))
    return MultiBoxTargets(
        torch.stack(labels), torch.stack(offsets), torch.stack(landmarks), torch.stack(masks)
    )


@dataclass(frozen=True)
class MultiBoxLoss:
    """``loc_weight * SmoothL1(positives) + CE(positives + mined negatives)``, both over N positives.

    Attributes:
        loc_weight: weight of the localisation term (2.0 in FaceBoxes.PyTorch).
        negatives_per_positive: hard negatives kept per positive (7 in both reference codes; 3 in SSD).
    """

    loc_weight: float = 2.0
    negatives_per_positive: int = 7

    def __call__(
        self,
        loc: torch.Tensor,
        conf: torch.Tensor,
        targets: MultiBoxTargets,
        normaliser: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``loc`` ``(B, A, 4)`` offsets and ``conf`` ``(B, A, 2)`` logits -> ``{"loc", "conf"}``.

        Both sums are divided by ``normaliser``: by default the batch's positives (at least 1);
        data-parallel training passes the mean over its processes, so that averaging their
        gradients gives the gradient of the whole batch.
        """
        positive = targets.labels > 0
        num_pos = positive.sum(dim=1, keepdim=True)
        if normaliser is None:
            normaliser = num_pos.sum().clamp(min=1).float()
        loss_loc = F.smooth_l1_loss(loc[positive], targets.offsets[positive], reduction="sum")

        with torch.no_grad():
            background_loss = -F.log_softmax(conf, dim=2)[..., 0]
            background_loss[positive] = 0
            rank = background_loss.argsort(dim=1, descending=True).argsort(dim=1)
            num_neg = (self.negatives_per_positive * num_pos).clamp(max=positive.shape[1] - 1)
            negative = rank < num_neg
        selected = positive | negative
        loss_conf = F.cross_entropy(conf[selected], targets.labels[selected], reduction="sum")
        return {"loc": self.loc_weight * loss_loc / normaliser, "conf": loss_conf / normaliser}


@dataclass(frozen=True)
class DistillationLoss:
    """Dense distillation from a teacher detector with the same anchors.

    The class term is the KL divergence between teacher and student softmax on every anchor; the
    box term regresses the student's offsets onto the teacher's where the teacher sees a face with
    probability above ``box_threshold``. Both are normalised by the number of ground-truth positives,
    like :class:`MultiBoxLoss`, so the weights are comparable.
    """

    conf_weight: float = 1.0
    loc_weight: float = 1.0
    box_threshold: float = 0.5

    def __call__(
        self,
        loc: torch.Tensor,
        conf: torch.Tensor,
        teacher_loc: torch.Tensor,
        teacher_conf: torch.Tensor,
        normaliser: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        teacher_prob = F.softmax(teacher_conf, dim=2)
        kl = F.kl_div(F.log_softmax(conf, dim=2), teacher_prob, reduction="sum")
        confident = teacher_prob[..., 1] > self.box_threshold
        box = F.smooth_l1_loss(loc[confident], teacher_loc[confident], reduction="sum")
        return {
            "distill_conf": self.conf_weight * kl / normaliser,
            "distill_loc": self.loc_weight * box / normaliser,
        }


@dataclass(frozen=True)
class SoftTargets:
    """Per-anchor targets from a teacher's detections (boxes with scores) on a batch.

    Attributes:
        probs: ``(B, A)`` float32 face probability in [0, 1] each anchor is trained towards.
        offsets: ``(B, A, 4)`` encoded offsets of the teacher box each anchor regresses onto.
        box_weights: ``(B, A)`` float32 weight of each anchor's regression (0: none).
        class_weights: ``(B, A)`` float32 weight of each anchor's class term: 0 on the anchors of
            labelled faces, which the labels' loss already trains (counted again, they would
            double the positives' weight), 1 elsewhere.
    """

    probs: torch.Tensor
    offsets: torch.Tensor
    box_weights: torch.Tensor
    class_weights: torch.Tensor


def build_soft_targets(
    detections: list[tuple[torch.Tensor, torch.Tensor]],
    labels: torch.Tensor,
    anchors: torch.Tensor,
    matcher: AnchorMatcher,
    coder: BoxCoder,
    box_threshold: float = 0.5,
) -> SoftTargets:
    """Soft targets from each image's teacher detections, ``(K_i, 4)`` xyxy boxes and ``(K_i,)``
    scores, on the ``(A, 4)`` cxcywh anchors; ``labels`` ``(B, A)`` are the ground truth's
    (:func:`build_targets`).

    The teacher boxes are matched to the anchors by the same ``matcher`` as the labelled faces,
    and an anchor's probability is the score of the box it is matched to (0 unmatched): the
    labels' 0/1 with 1 replaced by the teacher's confidence, so where teacher and labels agree the
    two losses ask the same. The labels win where they say face (probability 1, no teacher box
    regression): the teacher adds faces and softens background, it never argues against a
    labelled face; and the class term leaves the labelled faces' anchors to the labels' loss
    (``class_weights`` 0). The regression onto the matched teacher box is weighted by its score,
    and only where the score is at least ``box_threshold`` (a box the teacher doubts is a poor
    target).
    """
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    probs, offsets, weights = [], [], []
    for (boxes, scores), image_labels in zip(detections, labels):
        match = matcher(boxes, anchors_xyxy)
        matched = match != BACKGROUND
        score = torch.where(matched, scores[match.clamp(min=0)] if len(scores) else 0.0, 0.0)
        labelled = image_labels > 0
        probs.append(torch.where(labelled, 1.0, score))
        weights.append(torch.where(labelled | (score < box_threshold), 0.0, score))
        encoded = coder.encode(boxes[match.clamp(min=0)] if len(boxes) else anchors_xyxy, anchors)
        offsets.append(torch.where(matched[:, None], encoded, torch.zeros_like(encoded)))
    return SoftTargets(
        torch.stack(probs).float(), torch.stack(offsets), torch.stack(weights).float(), (labels <= 0).float()
    )


@dataclass(frozen=True)
class SoftTargetDistillation:
    """Distillation from teacher detections (:class:`SoftTargets`), for teachers of any
    architecture.

    The class term is the binary KL divergence ``KL(t || p)`` between each anchor's target face
    probability ``t`` and the student's ``p`` (softmax of its two logits) over every anchor but
    the labelled faces' (``class_weights``): its gradient in the face logit is ``p - t``, zero
    where the student agrees with the teacher, and it is 0 there (cross-entropy less the
    teacher's entropy). The box term is the smooth L1 to
    the teacher boxes' offsets, weighted per anchor. Both are divided by the normaliser of
    :class:`MultiBoxLoss` (the ground-truth positives), so the weights are comparable.

    Attributes:
        conf_weight: weight of the class term.
        loc_weight: weight of the box term.
        box_threshold: a teacher box is regressed onto where its score is at least this.
    """

    conf_weight: float = 1.0
    loc_weight: float = 1.0
    box_threshold: float = 0.5

    def __call__(
        self, loc: torch.Tensor, conf: torch.Tensor, targets: SoftTargets, normaliser: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``loc`` ``(B, A, 4)`` offsets and ``conf`` ``(B, A, 2)`` logits -> ``{"soft_conf",
        "soft_loc"}``."""
        log_p = F.log_softmax(conf, dim=2)
        t = targets.probs.to(log_p.dtype)
        entropy = torch.special.xlogy(t, t) + torch.special.xlogy(1 - t, 1 - t)
        kl = entropy - t * log_p[..., 1] - (1 - t) * log_p[..., 0]
        box = F.smooth_l1_loss(loc, targets.offsets, reduction="none").sum(dim=2)
        return {
            "soft_conf": self.conf_weight * (targets.class_weights * kl).sum() / normaliser,
            "soft_loc": self.loc_weight * (targets.box_weights * box).sum() / normaliser,
        }


@dataclass(frozen=True)
class LandmarkLoss:
    """RetinaFace's landmark loss (Deng et al., Sec. 3.1): smooth L1 between the predicted and
    the target landmark offsets of the positive anchors whose face has landmarks, divided by the
    number of those anchors (faces without landmarks add nothing).

    Attributes:
        weight: weight of the term (1.0 in RetinaFace's released code, beside a box weight of 2).
    """

    weight: float = 1.0

    def __call__(
        self, landmarks: torch.Tensor, targets: MultiBoxTargets, normaliser: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``landmarks`` ``(B, A, 10)`` offsets -> ``{"landmarks"}``, divided by ``normaliser``
        (the anchors with a landmark target, at least 1; their mean over processes under DDP)."""
        mask = targets.landmark_mask
        loss = F.smooth_l1_loss(landmarks[mask], targets.landmarks[mask], reduction="sum")
        return {"landmarks": self.weight * loss / normaliser}
