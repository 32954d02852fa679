"""Training objectives: the losses of one batch, given by a model's recipe to the shared loop
(:func:`edgevision.training.loop.fit`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from edgevision.detection.coder import BoxCoder, LandmarkCoder
from edgevision.detection.losses import (
    DistillationLoss,
    LandmarkLoss,
    MultiBoxLoss,
    SoftTargetDistillation,
    build_soft_targets,
    build_targets,
)
from edgevision.detection.matcher import AnchorMatcher
from edgevision.detection.single_shot import SingleShotDetector
from edgevision.errors import DatasetError
from edgevision.training.loop import mean_over_processes

POSITIVES = "positives"  # the count AnchorObjective reports: anchors matched to a face
LANDMARK_POSITIVES = "landmark_positives"  # ... and those of them whose face has landmarks


@dataclass
class AnchorObjective:
    """Multibox loss on the anchors matched to faces, plus dense distillation when a teacher with
    the same anchors is given, plus soft-target distillation when the batch carries teacher
    detections (a :class:`FaceTrainingSet` with a teacher), plus the landmark loss when the model
    has a landmark head and the batch carries landmarks: the objective of every single-shot anchor
    detector.

    Attributes:
        anchors: ``(A, 4)`` cxcywh pixel anchors of the (fixed) training input size.
        coder: the box coder the network's offsets use.
        matcher: which anchors are a face's (of the labels and of the teacher's boxes alike).
        teacher: a network with the same anchors, or None.
        distill: the dense distillation loss (with ``teacher``).
        multibox: the loss on the labelled faces.
        soft: the soft-target loss (with teacher detections in the batch).
        landmark_coder: the model's landmark coder (a model with a landmark head), or None.
        landmark: the landmark loss (with ``landmark_coder`` and landmarks in the batch).

    The losses are divided by the mean number of positives per process, so that DDP's mean of the
    processes' gradients is the gradient of the global batch's loss (each process's own count
    would weigh its faces differently).
    """

    anchors: torch.Tensor
    coder: BoxCoder
    matcher: AnchorMatcher = field(default_factory=AnchorMatcher)
    teacher: nn.Module | None = None
    distill: DistillationLoss = field(default_factory=DistillationLoss)
    multibox: MultiBoxLoss = field(default_factory=MultiBoxLoss)
    soft: SoftTargetDistillation = field(default_factory=SoftTargetDistillation)
    landmark_coder: LandmarkCoder | None = None
    landmark: LandmarkLoss = field(default_factory=LandmarkLoss)

    @classmethod
    def for_model(
        cls,
        model: SingleShotDetector,
        image_size: int,
        teacher: nn.Module | None = None,
        distill: DistillationLoss | None = None,
        soft: SoftTargetDistillation | None = None,
        landmark: LandmarkLoss | None = None,
    ) -> AnchorObjective:
        """The objective of ``model`` (its anchors at ``image_size`` px squares, coder, matcher)."""
        anchors = model.anchors((image_size, image_size))
        if teacher is not None:
            teacher.eval()
        return cls(
            anchors,
            model.coder,
            model.matcher,
            teacher,
            distill or DistillationLoss(),
            soft=soft or SoftTargetDistillation(),
            landmark_coder=model.landmark_coder,
            landmark=landmark or LandmarkLoss(),
        )

    def __call__(self, net: nn.Module, batch: tuple) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """``(B, 3, S, S)`` inputs, per-image ``(N_i, 4)`` xyxy faces and, optionally, per-image
        teacher detections ``((K_i, 4) xyxy, (K_i,) scores)`` and then per-image ``(N_i, 5, 2)``
        landmarks (NaN: none) -> named scalar losses, and ``{"positives": anchors matched to a
        face}`` (the multibox loss is 0 without any), with landmarks also
        ``{"landmark_positives": those whose face has landmarks}``."""
        images, boxes, *extras = batch
        detections = [extra for extra in extras if isinstance(extra[0], tuple)]
        landmarks = [extra for extra in extras if isinstance(extra[0], torch.Tensor)]
        anchors = self.anchors.to(images.device)
        landmark_coder = self.landmark_coder if landmarks else None
        targets = build_targets(
            boxes, anchors, self.matcher, self.coder, landmarks[0] if landmarks else None, landmark_coder
        )
        positives = (targets.labels > 0).sum()
        normaliser = mean_over_processes(positives.float()).clamp(min=1)
        loc, conf, *predicted_landmarks = net(images)
        losses = self.multibox(loc, conf, targets, normaliser)
        counts = {POSITIVES: int(positives)}
        if targets.landmark_mask is not None and predicted_landmarks:
            with_landmarks = targets.landmark_mask.sum()
            landmark_normaliser = mean_over_processes(with_landmarks.float()).clamp(min=1)
            losses |= self.landmark(predicted_landmarks[0], targets, landmark_normaliser)
            counts[LANDMARK_POSITIVES] = int(with_landmarks)
        if self.teacher is not None:
            self.teacher.to(images.device)
            with torch.no_grad():
                teacher_loc, teacher_conf, *_ = self.teacher(images)
            losses |= self.distill(loc, conf, teacher_loc, teacher_conf, normaliser)
        if detections:
            soft_targets = build_soft_targets(
                detections[0], targets.labels, anchors, self.matcher, self.coder, self.soft.box_threshold
            )
            losses |= self.soft(loc, conf, soft_targets, normaliser)
        return losses, counts


def require_matched_faces(images: int, image_size: int) -> Callable[[int, Mapping[str, int]], None]:
    """An epoch-end check refusing an epoch in which no anchor was matched to a face in any
    process: the multibox loss was 0 and nothing was learnt."""

    def check(epoch: int, counts: Mapping[str, int]) -> None:
        if counts.get(POSITIVES, 0) == 0:
            raise DatasetError(
                f"no face of the {images} training images matched an anchor in epoch {epoch} at "
                f"{image_size} px: nothing can be learnt (faces too small for the anchors at this size?)"
            )

    return check
