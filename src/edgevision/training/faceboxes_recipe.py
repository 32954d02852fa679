"""Training FaceBoxes on a WIDER FACE tree: data, optional teacher, and the loop."""

from __future__ import annotations

from pathlib import Path

import torch

from edgevision.data.transforms import faceboxes_train_transform
from edgevision.data.widerface import load_split
from edgevision.models import create_model
from edgevision.models.weights import load_weights
from edgevision.training.detection_dataset import FaceTrainingSet
from edgevision.training.trainer import TrainConfig, train_detector


def train_faceboxes_on_widerface(
    data: Path,
    config: TrainConfig,
    teacher_weights: Path | None = None,
    max_images: int | None = None,
    resume: bool = False,
) -> Path:
    """Train FaceBoxes on ``data/WIDER_train`` (faces flagged invalid are left out); returns the
    final weights path. ``max_images`` takes the first images only (for quick runs and tests)."""
    split = load_split(data, "train")
    records = split.records[:max_images] if max_images else split.records
    torch.manual_seed(config.seed)  # the initial weights
    model = create_model("faceboxes")
    dataset = FaceTrainingSet(
        [split.image_path(r) for r in records],
        [r.boxes[r.valid] for r in records],
        faceboxes_train_transform(config.image_size, model.config.mean_bgr),
        model.config.mean_bgr,
        seed=config.seed,
    )
    teacher = (
        load_weights(create_model("faceboxes"), teacher_weights, "faceboxes") if teacher_weights else None
    )
    return train_detector(model, dataset, config, teacher=teacher, resume=resume)
