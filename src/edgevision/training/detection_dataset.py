"""A training data set of face images with reproducible per-sample augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from edgevision.data.io import read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.data.transforms import Compose, Sample


class FaceTrainingSet(Dataset):
    """Images and their ``(N, 4)`` xyxy faces, augmented by ``transform``.

    Sample ``i`` of epoch ``e`` is augmented with the generator seeded by ``(seed, e, i)``, so a
    resumed run sees the same stream as an uninterrupted one.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        boxes: Sequence[np.ndarray],
        transform: Compose,
        preprocessing: Preprocessing,
        seed: int = 0,
    ) -> None:
        self.paths = list(paths)
        self.boxes = list(boxes)
        self.transform = transform
        self.preprocessing = preprocessing
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(3, S, S)`` float32 network input and ``(N, 4)`` float32 xyxy faces in its pixels."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self.transform(Sample(read_image(self.paths[index]), self.boxes[index]), rng)
        return torch.from_numpy(self.preprocessing.network_input(sample.image)), torch.from_numpy(
            sample.boxes
        )


def collate_detection(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Stack same-size images ``(B, 3, S, S)``; keep the per-image boxes as a list."""
    images, boxes = zip(*batch)
    return torch.stack(images), list(boxes)
