"""Average precision shared by the detection protocols (WIDER FACE, Open Images).

Both protocols take the area under the precision *envelope* (the running maximum of precision
from high recall to low), the all-point AP of the PASCAL VOC devkit (VOC 2010 onwards), which is
also the Open Images challenge's ``compute_average_precision``.
"""

from __future__ import annotations

import numpy as np


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point AP: area under the precision envelope of a ``(T,)`` recall/precision curve.

    ``recall`` must be non-decreasing. The curve is closed with ``(0, 0)`` and ``(1, 0)``; NaN
    precisions are skipped by the envelope (``np.fmax``), so points where no detection passes carry
    no weight. An empty curve has AP 0.
    """
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def precision_recall(scores: np.ndarray, labels: np.ndarray, num_gt: float) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of detections ranked by descending score.

    Args:
        scores: ``(N,)`` detection scores.
        labels: ``(N,)`` float true-positive weight of each detection (``> 0``: a true positive of
            that weight; ``<= 0``: a false positive).
        num_gt: the number (or total weight) of ground-truth instances, ``> 0``.

    Returns:
        ``(precision, recall)``, each ``(N,)`` float64, in rank order.

    Ties in score are ranked as ``np.argsort(scores)[::-1]`` of the TensorFlow Object Detection
    API's ``compute_precision_recall`` ranks them for small inputs: the later detection first.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in shape: {scores.shape} and {labels.shape}")
    if not num_gt > 0:
        raise ValueError(f"num_gt must be positive, got {num_gt}")
    order = np.argsort(scores, kind="stable")[::-1]
    tp = labels[order]
    cum_tp = np.cumsum(tp)
    cum_fp = np.cumsum((tp <= 0).astype(np.float64))
    return cum_tp / (cum_tp + cum_fp), cum_tp / num_gt
