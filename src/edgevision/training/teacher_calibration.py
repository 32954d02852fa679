"""A teacher's scores made probabilities: how often a box of each score is a labelled face of the
training images, fitted on those images and applied as a monotone map.

Why: soft targets ask the student to output the teacher's score, so the score should mean what a
probability means. YuNet's do not below 0.5: on the WIDER train images, its boxes at 0.1-0.3 are
labelled faces 1% of the time and at 0.5-0.7 36%, while FaceBoxes' are 12% and 57% there
(``benchmarks/teacher_recall.py``). Mapped to those frequencies, a teacher's unsure boxes weigh
what they are worth, and the scores of different teachers can be compared (the ensemble keeps
the highest). The frequencies count faces the labels leave out as mistakes, so they are a lower
bound; the labelled faces themselves are trained on through the labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from edgevision.data.io import read_image
from edgevision.detection.detections import Detections
from edgevision.training.teachers import Teacher

# Score bins of the fit: one knot per bin, at its detections' mean score.
FIT_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
UNMATCHED = -1


def match_to_faces(found: Detections, faces: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """The face each detection takes: greedily, best score first, a face goes to the first
    detection overlapping it at ``iou`` or more (WIDER FACE's matching).

    Args:
        found: ``K`` detections, xyxy pixels.
        faces: ``(G, 4)`` xyxy pixels, the labelled faces.

    Returns:
        ``(K,)`` int64 in detection order: the index of the face taken, or :data:`UNMATCHED`.
    """
    taken_by = np.full(len(found), UNMATCHED, np.int64)
    if not len(found) or not len(faces):
        return taken_by
    overlaps = box_iou(found.boxes.float(), torch.from_numpy(faces).float()).numpy()
    taken = np.zeros(len(faces), bool)
    for d in np.argsort(-found.scores.numpy(), kind="stable"):
        free = np.where(taken, -1.0, overlaps[d])
        g = int(free.argmax())
        if free[g] >= iou:
            taken[g] = True
            taken_by[d] = g
    return taken_by


@dataclass(frozen=True)
class ScoreCalibration:
    """A non-decreasing piecewise-linear map of scores in [0, 1] through ``(scores[i],
    probabilities[i])``; flat beyond the first and last knot."""

    scores: tuple[float, ...]
    probabilities: tuple[float, ...]

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        mapped = np.interp(scores.numpy().astype(np.float64), self.scores, self.probabilities)
        return torch.from_numpy(mapped.astype(np.float32))


def fit_score_calibration(scores: np.ndarray, on_face: np.ndarray) -> ScoreCalibration:
    """The calibration of detections with ``scores``, ``on_face`` or not: per bin of
    :data:`FIT_EDGES`, the fraction of its detections on a face at their mean score, made
    non-decreasing (a running maximum: a higher score never means less). Empty bins give no knot;
    no detection at all gives the identity."""
    bins = np.clip(np.digitize(scores, FIT_EDGES[1:-1]), 0, len(FIT_EDGES) - 2)
    knots = [(float(scores[bins == b].mean()), float(on_face[bins == b].mean())) for b in np.unique(bins)]
    if not knots:
        return ScoreCalibration((0.0, 1.0), (0.0, 1.0))
    xs, ys = zip(*knots)
    return ScoreCalibration(tuple(xs), tuple(np.maximum.accumulate(ys).tolist()))


def calibrate(teacher: Teacher, images: Iterable[tuple[Path, np.ndarray, np.ndarray]]) -> ScoreCalibration:
    """Run ``teacher`` on each ``(image path, (G, 4) xyxy faces, (G,) valid)`` at its own size and
    fit its :class:`ScoreCalibration` to the valid faces (detections on invalid ones left out)."""
    scores, on_face = [], []
    for path, faces, valid in images:
        found = teacher(read_image(path))
        taken = match_to_faces(found, faces)
        counted = np.append(valid, True)[taken]  # UNMATCHED (-1) reads the True appended
        scores.append(found.scores.numpy()[counted])
        on_face.append(taken[counted] != UNMATCHED)
    return fit_score_calibration(np.concatenate(scores), np.concatenate(on_face))


class CalibratedTeacher:
    """``teacher`` with its scores mapped by ``calibration`` (best first again)."""

    def __init__(self, teacher: Teacher, calibration: ScoreCalibration) -> None:
        self.teacher = teacher
        self.calibration = calibration

    def __call__(self, image: np.ndarray) -> Detections:
        found = self.teacher(image)
        scores = self.calibration(found.scores)
        order = torch.argsort(scores, descending=True, stable=True)
        reordered = found[order]  # with its landmarks, if any
        return Detections(reordered.boxes, scores[order], reordered.landmarks)
