"""Training FaceBoxes on a WIDER FACE tree: data, optional teacher, and the loop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from edgevision.data.transforms import faceboxes_train_transform
from edgevision.data.widerface import load_split
from edgevision.errors import DatasetError
from edgevision.models import create_model
from edgevision.training.config import TrainConfig, prepare_run
from edgevision.training.detection_dataset import FaceTrainingSet
from edgevision.training.trainer import train_detector


def train_faceboxes_on_widerface(
    data: Path,
    config: TrainConfig,
    teacher_weights: Path | None = None,
    max_images: int | None = None,
    resume: bool = False,
) -> Path:
    """Train FaceBoxes on ``data/WIDER_train``; returns the final weights path. ``max_images``
    takes the first images only (for quick runs and tests). The input size, output folder and
    teacher weights are checked before the annotations are read."""
    torch.manual_seed(config.seed)  # the initial weights
    model = create_model("faceboxes")
    prepare_run(config, model)
    teacher = create_model("faceboxes", weights=teacher_weights) if teacher_weights else None
    dataset = widerface_training_set(data, config.image_size, model.config.mean_bgr, config.seed, max_images)
    return train_detector(model, dataset, config, teacher=teacher, resume=resume)


def widerface_training_set(
    data: Path, image_size: int, mean_bgr: Sequence[float], seed: int, max_images: int | None = None
) -> FaceTrainingSet:
    """WIDER FACE train images (the first ``max_images`` when given) and their faces, leaving out
    those flagged invalid, with FaceBoxes' augmentation to ``image_size`` px squares.

    Raises:
        DatasetError: the split is missing or malformed, or no image has a valid face.
    """
    split = load_split(data, "train")
    records = split.records[:max_images] if max_images else split.records
    if not any(r.valid.any() for r in records):
        raise DatasetError(f"none of the {len(records)} training images in {data} has a valid face")
    return FaceTrainingSet(
        [split.image_path(r) for r in records],
        [r.boxes[r.valid] for r in records],
        faceboxes_train_transform(image_size, mean_bgr),
        mean_bgr,
        seed=seed,
    )
