"""A training data set of face images with reproducible per-sample augmentation and, optionally,
a teacher's detections on each augmented image and each face's landmarks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from edgevision.data.io import read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.data.transforms import Compose, Sample
from edgevision.detection.detections import Detections

# (image, faces), then (teacher boxes, teacher scores) with a teacher, then the faces' (N, 5, 2)
# landmarks with landmarks: plain tuples, which the training loop moves to the device as they are.
TrainingSample = tuple[torch.Tensor | tuple[torch.Tensor, torch.Tensor], ...]


class FaceTrainingSet(Dataset):
    """Images and their ``(N, 4)`` xyxy faces, augmented by ``transform``.

    Sample ``i`` of epoch ``e`` is augmented with the generator seeded by ``(seed, e, i)``, so a
    resumed run sees the same stream as an uninterrupted one. With a ``teacher``
    (:mod:`edgevision.training.teachers`: augmented ``(H, W, 3)`` uint8 BGR image -> detections),
    each sample also carries the teacher's detections on the augmented image, made here, in the
    data-loading process; a deterministic teacher keeps the stream reproducible. With
    ``landmarks`` (``(N_i, 5, 2)`` pixels per image, NaN for a face without), each sample also
    carries its faces' landmarks, moved by the same augmentation.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        boxes: Sequence[np.ndarray],
        transform: Compose,
        preprocessing: Preprocessing,
        seed: int = 0,
        teacher: Callable[[np.ndarray], Detections] | None = None,
        landmarks: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.boxes = list(boxes)
        self.transform = transform
        self.preprocessing = preprocessing
        self.seed = seed
        self.teacher = teacher
        self.landmarks = None if landmarks is None else list(landmarks)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def raw_sample(self, rng: np.random.Generator) -> Sample:
        """A random image of the set with its faces, un-augmented (what a mosaic draws), chosen
        by ``rng``: the caller's generator keeps the stream reproducible."""
        index = int(rng.integers(len(self.paths)))
        return self._raw(index)

    def _raw(self, index: int) -> Sample:
        landmarks = None if self.landmarks is None else self.landmarks[index]
        return Sample(read_image(self.paths[index]), self.boxes[index], landmarks)

    def __getitem__(self, index: int) -> TrainingSample:
        """``(3, S, S)`` float32 network input and ``(N, 4)`` float32 xyxy faces in its pixels;
        with a teacher, also its ``((K, 4) xyxy boxes, (K,) scores)`` in the same pixels; with
        landmarks, last, the faces' ``(N, 5, 2)`` float32 landmarks (NaN: none)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self.transform(self._raw(index), rng)
        image = torch.from_numpy(self.preprocessing.network_input(sample.image))
        item: TrainingSample = (image, torch.from_numpy(sample.boxes))
        if self.teacher is not None:
            found = self.teacher(sample.image)
            item += ((found.boxes, found.scores),)
        if self.landmarks is not None:
            item += (torch.from_numpy(sample.landmarks),)
        return item


def collate_detection(batch: list[TrainingSample]) -> tuple:
    """Stack same-size images ``(B, 3, S, S)``; keep the per-image boxes (and teacher detections
    and landmarks, when the samples have them) as lists: ``(images, boxes[, detections][, landmarks])``."""
    images, boxes, *detections = zip(*batch)
    return (torch.stack(images), list(boxes), *(list(d) for d in detections))
