"""Landmark targets for training a detector's landmark head: a teacher's five points (YuNet's,
:class:`edgevision.training.teachers.YuNetTeacher`) on each labelled face it also finds, computed
once per image at the image's own size and cached, then moved with the boxes by the augmentation
(:class:`edgevision.data.transforms.Sample`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgevision.boxes import NUM_LANDMARKS
from edgevision.data.io import read_image, save_npz
from edgevision.detection.detections import Detections
from edgevision.detection.matcher import BACKGROUND, match_greedy
from edgevision.errors import ConfigError
from edgevision.training.teachers import Teacher

MATCH_IOU = 0.5  # a labelled face takes the landmarks of the teacher box it overlaps this much
MIN_SCORE = 0.5  # the teacher's detections below this are not "found" (their points are poor)


def matched_landmarks(
    boxes: np.ndarray, found: Detections, min_iou: float = MATCH_IOU, min_score: float = MIN_SCORE
) -> np.ndarray:
    """The landmarks of ``found`` (a teacher's detections with landmarks) for the ``(N, 4)`` xyxy
    labelled faces: each face takes those of the teacher box paired with it by
    :func:`~edgevision.detection.matcher.match_greedy` (IoU >= ``min_iou``, scores >= ``min_score``).

    Returns:
        ``(N, 5, 2)`` float32 pixels, NaN for a face the teacher does not find.

    Raises:
        ConfigError: the teacher gives no landmarks.
    """
    if found.landmarks is None:
        raise ConfigError("the landmark teacher gives no landmarks (a YuNet teacher does)")
    found = found.above(min_score)
    match = match_greedy(torch.from_numpy(np.asarray(boxes, np.float32)).reshape(-1, 4), found.boxes, min_iou)
    points = np.full((len(match), NUM_LANDMARKS, 2), np.nan, np.float32)
    paired = match != BACKGROUND
    points[paired.numpy()] = found.landmarks[match[paired]].numpy()
    return points


def cached_teacher_landmarks(
    teacher: Teacher, paths: Sequence[Path], boxes: Sequence[np.ndarray], cache: Path, teacher_id: str
) -> list[np.ndarray]:
    """:func:`matched_landmarks` of every image (``paths[i]`` with its faces ``boxes[i]``), read
    from ``cache`` (an ``.npz``) when it was made for the same images, faces and ``teacher_id``
    (e.g. the teacher file's sha256), else computed (one teacher pass per image) and written there.
    """
    key = _cache_key(paths, boxes, teacher_id)
    if cache.is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                return np.split(stored["landmarks"], stored["offsets"][1:-1])
    landmarks = [matched_landmarks(b, teacher(read_image(p))) for p, b in zip(paths, boxes)]
    offsets = np.cumsum([0] + [len(points) for points in landmarks])
    save_npz(
        cache,
        key=np.array(key),
        landmarks=np.concatenate(landmarks).reshape(-1, NUM_LANDMARKS, 2),
        offsets=offsets,
    )
    return landmarks


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cache_key(paths: Sequence[Path], boxes: Sequence[np.ndarray], teacher_id: str) -> str:
    """A digest of the images, their faces, the teacher and the matching rule."""
    digest = hashlib.sha256(json.dumps([teacher_id, MATCH_IOU, MIN_SCORE, [str(p) for p in paths]]).encode())
    for face_boxes in boxes:
        digest.update(np.ascontiguousarray(face_boxes, np.float32).tobytes() + b"|")
    return digest.hexdigest()
