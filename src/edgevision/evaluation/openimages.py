"""The Open Images detection challenge metric (Open Images Challenge 2018/2019, boxes).

As the challenge's evaluation (TensorFlow Object Detection API:
``metrics/oid_challenge_evaluation.py``, ``utils/object_detection_evaluation.py``
``OpenImagesDetectionChallengeEvaluator``, ``utils/per_image_evaluation.py``, ``utils/metrics.py``)
computes it, on ground truth expanded up the class hierarchy (:mod:`edgevision.data.openimages_hierarchy`):

1. A class is evaluated on an image only if it is *verified* there: a positive or negative
   image-level label, or a box, of that class. Detections of other classes on the image, and
   detections on images without ground truth, are ignored.
2. Per image and class, detections with an empty box (``XMin >= XMax`` or ``YMin >= YMax``) are
   dropped, the rest ranked by descending score (at most 10,000 kept). A verified class with no
   box (a negative label, or a positive one without boxes) makes every detection a false positive.
3. Each detection, in rank order, is matched to the non-group-of box of highest IoU; it is a true
   positive if that IoU is >= 0.5 and the box is not yet taken, else a false positive (it does not
   fall back to another box).
4. Every detection not a true positive whose highest intersection-over-its-own-area with a
   group-of box is >= 0.5 is matched to that box instead and leaves the ranking; each group-of box
   with a match adds one true positive (weight ``group_of_weight``, 1 in the challenge) scored with
   its best detection.
5. Per class, the ground-truth count is the non-group-of boxes plus ``group_of_weight`` times the
   group-of boxes, over every image; detections of all images are ranked together, and AP is the
   area under the precision envelope (:func:`edgevision.evaluation.ap.voc_ap`). A class without
   ground truth has AP NaN and is left out of the mean; mAP is the mean over the other classes.

Where this module differs from the reference, the result is the same except as named:

- Equal scores are ranked as ``np.argsort(scores)[::-1]`` ranks them for inputs that numpy sorts
  stably (the later detection first); the reference's order among ties is numpy's unstable
  quicksort, which can vary with the input's size and the CPU, and so can its AP on ties.
- The reference keeps only scores above -10 (``filter_scores_greater_than(-10)``); so does this one.
- Hierarchy expansion counts a shared ancestor once (see :mod:`edgevision.data.openimages_hierarchy`); the
  reference's expansion script writes such boxes twice, adding unmatched duplicates.
- A group-of box whose best matched detection scores <= 0 adds no true positive, as in the
  reference (its running maximum starts at 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgevision.data.openimages import (
    BoxAnnotations,
    ImageLabels,
    Predictions,
    read_box_annotations,
    read_image_labels,
    read_predictions,
)
from edgevision.data.openimages_expansion import expand_boxes, expand_image_labels
from edgevision.data.openimages_hierarchy import ClassHierarchy, load_hierarchy
from edgevision.evaluation.ap import precision_recall, voc_ap

MAX_DETECTIONS = 10_000  # per image and class (the reference's nms_max_output_boxes)
MIN_SCORE = -10.0  # scores at or below are dropped (the reference's NMS score_threshold)


@dataclass(frozen=True)
class OpenImagesResult:
    """Open Images challenge AP per class.

    Attributes:
        classes: the evaluated class MIDs, in order.
        ap: MID -> AP in [0, 1]; NaN when the class has no ground-truth box on any image.
        num_gt: MID -> ground-truth count (non-group-of boxes + weight x group-of boxes).
        curves: MID -> ``(K, 2)`` float64 columns precision, recall of the ranked detections that
            count (ignored ones excluded; a group-of box's true positive included).
        num_images: images with ground truth (boxes or verified labels).
    """

    classes: tuple[str, ...]
    ap: dict[str, float]
    num_gt: dict[str, float]
    curves: dict[str, np.ndarray] = field(repr=False)
    num_images: int

    @property
    def mean_ap(self) -> float:
        """The mean AP over the classes with ground truth (NaN if none has)."""
        values = [v for v in self.ap.values() if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan


def _overlaps(det: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, M)`` intersection areas of xyxy boxes and the ``(N,)`` detection areas.

    Operations in the reference's order (``np_box_ops``): heights times widths, in float64.
    """
    heights = np.maximum(
        0.0, np.minimum(det[:, None, 3], gt[None, :, 3]) - np.maximum(det[:, None, 1], gt[None, :, 1])
    )
    widths = np.maximum(
        0.0, np.minimum(det[:, None, 2], gt[None, :, 2]) - np.maximum(det[:, None, 0], gt[None, :, 0])
    )
    return heights * widths, (det[:, 3] - det[:, 1]) * (det[:, 2] - det[:, 0])


def match_image_class(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_group_of: np.ndarray,
    iou_threshold: float = 0.5,
    group_of_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Label one class's detections on one image (steps 3 and 4 of the module notes).

    Args:
        det_boxes: ``(N, 4)`` float64 xyxy, ranked by descending score.
        det_scores: ``(N,)`` their scores.
        gt_boxes: ``(M, 4)`` float64 xyxy ground-truth boxes of the class on the image.
        gt_group_of: ``(M,)`` bool, the group-of boxes.

    Returns:
        ``(scores, labels)``: the detections that count, in rank order, then one entry per
        group-of box with a match (its best score, label ``group_of_weight``); labels are float64,
        1 for a true positive and 0 for a false positive.
    """
    n = len(det_boxes)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    if len(gt_boxes) == 0:
        return det_scores, np.zeros(n)
    tp = np.zeros(n, dtype=bool)
    single = gt_boxes[~gt_group_of]
    if len(single):
        inter, det_area = _overlaps(det_boxes, single)
        gt_area = (single[:, 3] - single[:, 1]) * (single[:, 2] - single[:, 0])
        iou = inter / (det_area[:, None] + gt_area[None, :] - inter)
        best = iou.argmax(axis=1)
        hit = np.flatnonzero(iou[np.arange(n), best] >= iou_threshold)
        # A box is taken by its first hit in rank order; later hits on it are false positives.
        _, first = np.unique(best[hit], return_index=True)
        tp[hit[first]] = True
    in_group = np.zeros(n, dtype=bool)
    group_scores = np.zeros(0)
    groups = gt_boxes[gt_group_of]
    if len(groups):
        inter, det_area = _overlaps(det_boxes, groups)
        ioa = inter / det_area[:, None]
        best = ioa.argmax(axis=1)
        in_group = ~tp & (ioa[np.arange(n), best] >= iou_threshold)
        group_scores = np.zeros(len(groups))
        np.maximum.at(group_scores, best[in_group], det_scores[in_group])
        group_scores = group_scores[(group_scores > 0) & (group_of_weight > 0)]
    kept = ~in_group
    return (
        np.concatenate([det_scores[kept], group_scores]),
        np.concatenate([tp[kept].astype(np.float64), np.full(len(group_scores), float(group_of_weight))]),
    )


def evaluate(
    boxes: BoxAnnotations,
    predictions: Predictions,
    image_labels: ImageLabels | None = None,
    *,
    hierarchy: ClassHierarchy | None = None,
    classes: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
    group_of_weight: float = 1.0,
) -> OpenImagesResult:
    """Run the Open Images challenge detection metric (see the module notes).

    Args:
        boxes: ground-truth boxes, normalised xyxy (read them with ``box_dtype=np.float64`` to
            compute overlaps in the reference's precision).
        predictions: the detections; they are not expanded up the hierarchy (a submission must
            name every class it detects, parents included).
        image_labels: verified image-level labels (positive and negative); None: none.
        hierarchy: if given, ``boxes`` and ``image_labels`` are expanded with it first, as the
            challenge's ground truth is; pass None for ground truth already expanded.
        classes: the MIDs to evaluate (the challenge's label map); rows of other classes are left
            out. Default: every class with a box or an image-level label.
        iou_threshold: IoU (and group-of IoA) at or above which a detection matches (0.5).
        group_of_weight: true-positive weight of a group-of box (1 in the challenge; 0 ignores the
            detections inside group-of boxes, the Open Images V2 metric).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if not 0.0 <= group_of_weight <= 1.0:
        raise ValueError(f"group_of_weight must be in [0, 1], got {group_of_weight}")
    labels = image_labels if image_labels is not None else ImageLabels.empty()
    if hierarchy is not None:
        boxes = expand_boxes(boxes, hierarchy)
        labels = expand_image_labels(labels, hierarchy)
    if classes is None:
        classes = sorted(set(boxes.label_names.tolist()) | set(labels.label_names.tolist()))
    classes = tuple(dict.fromkeys(classes))
    class_index = {mid: k for k, mid in enumerate(classes)}
    num_classes = len(classes)

    # Images in sorted ID order, the order in which the reference adds them (pandas groupby).
    images = np.unique(np.concatenate([boxes.image_ids, labels.image_ids]))
    image_index = {image: k for k, image in enumerate(images.tolist())}

    def codes(image_ids: np.ndarray, label_names: np.ndarray) -> np.ndarray:
        """``image * num_classes + class`` per row; -1 where the image or class is not evaluated."""
        img = np.fromiter((image_index.get(v, -1) for v in image_ids), np.int64, len(image_ids))
        cls = np.fromiter((class_index.get(v, -1) for v in label_names), np.int64, len(label_names))
        return np.where((img >= 0) & (cls >= 0), img * num_classes + cls, -1)

    gt_key = codes(boxes.image_ids, boxes.label_names)
    kept = gt_key >= 0
    gt_key, gt_boxes, gt_group = gt_key[kept], boxes.boxes[kept].astype(np.float64), boxes.is_group_of[kept]
    gt_class = gt_key % max(num_classes, 1)
    num_gt = np.bincount(gt_class[~gt_group], minlength=num_classes).astype(np.float64)
    num_gt += group_of_weight * np.bincount(gt_class[gt_group], minlength=num_classes)
    label_key = codes(labels.image_ids, labels.label_names)
    verified = np.unique(np.concatenate([gt_key, label_key[label_key >= 0]]))

    det_key = codes(predictions.image_ids, predictions.label_names)
    det = predictions.boxes
    usable = (
        np.isin(det_key, verified)
        & (det[:, 1] < det[:, 3])
        & (det[:, 0] < det[:, 2])
        & (predictions.scores > MIN_SCORE)
    )
    det_key, det, det_scores = det_key[usable], det[usable], predictions.scores[usable]

    gt_order = np.argsort(gt_key, kind="stable")
    gt_keys, gt_start, gt_count = np.unique(gt_key[gt_order], return_index=True, return_counts=True)
    gt_slot = {int(key): (start, count) for key, start, count in zip(gt_keys, gt_start, gt_count)}
    det_order = np.argsort(det_key, kind="stable")
    det_keys, det_start, det_count = np.unique(det_key[det_order], return_index=True, return_counts=True)

    scores_per_class: list[list[np.ndarray]] = [[] for _ in classes]
    labels_per_class: list[list[np.ndarray]] = [[] for _ in classes]
    for key, start, count in zip(det_keys.tolist(), det_start.tolist(), det_count.tolist()):
        rows = det_order[start : start + count]
        rank = np.argsort(det_scores[rows], kind="stable")[::-1][:MAX_DETECTIONS]
        rows = rows[rank]
        g_start, g_count = gt_slot.get(key, (0, 0))
        g_rows = gt_order[g_start : g_start + g_count]
        scores, tp = match_image_class(
            det[rows], det_scores[rows], gt_boxes[g_rows], gt_group[g_rows], iou_threshold, group_of_weight
        )
        scores_per_class[key % num_classes].append(scores)
        labels_per_class[key % num_classes].append(tp)

    ap, curves = {}, {}
    for k, mid in enumerate(classes):
        if num_gt[k] == 0:
            ap[mid], curves[mid] = math.nan, np.zeros((0, 2))
            continue
        scores = np.concatenate(scores_per_class[k]) if scores_per_class[k] else np.zeros(0)
        tp = np.concatenate(labels_per_class[k]) if labels_per_class[k] else np.zeros(0)
        precision, recall = precision_recall(scores, tp, num_gt[k])
        ap[mid] = voc_ap(recall, precision)
        curves[mid] = np.stack([precision, recall], axis=1)
    return OpenImagesResult(
        classes, ap, {mid: float(num_gt[k]) for k, mid in enumerate(classes)}, curves, len(images)
    )


def evaluate_files(
    boxes_csv: str | Path,
    predictions_csv: str | Path,
    labels_csv: str | Path | None = None,
    *,
    hierarchy_json: str | Path | None = None,
    classes: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
    group_of_weight: float = 1.0,
) -> OpenImagesResult:
    """Run :func:`evaluate` on the challenge's files.

    Args:
        boxes_csv: ground-truth ``*-annotations-bbox.csv`` (official or reduced format).
        predictions_csv: the submission CSV.
        labels_csv: ``*-annotations-human-imagelabels-boxable.csv``; None: no image-level labels.
        hierarchy_json: ``bbox_labels_600_hierarchy.json`` to expand the ground truth with; None for
            ground truth already expanded (the challenge's ``*-expanded.csv`` files).
        classes: the MIDs to evaluate; rows of other classes are not even kept in memory.

    Raises:
        DatasetError: a file is missing or malformed.
    """
    hierarchy = load_hierarchy(hierarchy_json) if hierarchy_json is not None else None
    box_classes = label_classes = classes
    if hierarchy is not None and classes is not None:
        # Expanded, a class gets the boxes and positive labels of its sub-classes, and the
        # negative labels of its ancestors: keep those rows too.
        box_classes = hierarchy.with_descendants(classes)
        label_classes = box_classes | {a for mid in classes for a in hierarchy.ancestors(mid)}
    boxes = read_box_annotations(boxes_csv, classes=box_classes, box_dtype=np.float64)
    labels = read_image_labels(labels_csv, classes=label_classes) if labels_csv is not None else None
    predictions = read_predictions(predictions_csv, classes=classes)
    return evaluate(
        boxes,
        predictions,
        labels,
        hierarchy=hierarchy,
        classes=classes,
        iou_threshold=iou_threshold,
        group_of_weight=group_of_weight,
    )
