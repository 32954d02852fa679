"""The ``single_shot_faces`` recipe: a single-shot anchor face detector (FaceBoxes, or any
:class:`edgevision.detection.single_shot.SingleShotDetector`) trained on a WIDER FACE tree with
FaceBoxes' augmentation, SGD with warm-up and steps, the multibox loss and, optionally, dense
distillation from a teacher of the same architecture and soft-target distillation from teachers
of any architecture (``config.teachers``), and, with a landmark teacher, the landmark head
(``config.landmark_teacher``; alone, every other weight frozen, with ``config.landmarks_only``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgevision.data.preprocessing import Preprocessing
from edgevision.data.transforms import faceboxes_train_transform, small_face_train_transform
from edgevision.data.widerface import load_split
from edgevision.detection.losses import DistillationLoss, LandmarkLoss, SoftTargetDistillation
from edgevision.detection.single_shot import SingleShotDetector
from edgevision.errors import ConfigError, DatasetError, WeightsError
from edgevision.models import create_model, weights_options
from edgevision.models.checkpoint import load_checkpoint
from edgevision.models.weights import load_weights
from edgevision.training.config import TrainConfig, prepare_run
from edgevision.training.detection_dataset import FaceTrainingSet, collate_detection
from edgevision.training.landmark_targets import cached_teacher_landmarks, file_sha256
from edgevision.training.loop import fit
from edgevision.training.objectives import AnchorObjective, require_matched_faces
from edgevision.training.recipes import register_recipe
from edgevision.training.schedules import sgd_warmup_steps
from edgevision.training.teacher_calibration import CalibratedTeacher, ScoreCalibration, calibrate
from edgevision.training.teachers import Teacher, YuNetTeacher, ensemble, teachers_from_specs

LANDMARK_CACHE = "landmark_targets.npz"  # the landmark teacher's points per image, in the run's folder


@register_recipe("single_shot_faces", data_folder="widerface")
def train_single_shot_faces(
    model_name: str,
    data: Path,
    config: TrainConfig,
    *,
    teacher: Path | None = None,
    max_images: int | None = None,
    resume: bool = False,
    model_options: Mapping[str, Any] | None = None,
) -> Path:
    """Train ``model_name`` (built with ``model_options``) on ``data/WIDER_train``; returns the
    final weights path.
    ``max_images`` takes the first images only (for quick runs and tests). The input size, output
    folder and teachers' weights are checked before the annotations are read."""
    torch.manual_seed(config.seed)  # the initial weights
    options = dict(model_options or {})
    init_weights = options.pop("weights", None)
    if init_weights is not None:  # what the weights hold (e.g. a landmark head) is built
        options = {**weights_options(model_name, init_weights), **options}
    if config.landmark_teacher:
        options["landmarks"] = True
    model = create_model(model_name, **options)
    if not isinstance(model, SingleShotDetector):
        raise ConfigError(f"{model_name!r} is not a single-shot anchor detector; this recipe trains those")
    if config.landmark_teacher and model.landmark_head is None:
        raise ConfigError(f"{model_name!r} has no landmark head to train")
    if init_weights is not None:  # a landmark head the weights lack starts from its initial weights
        new_parts = (model.landmark_head,) if model.landmark_head else ()
        load_weights(model, init_weights, model_name, new_parts)
    # The teachers' weights are read before the output folder is made.
    teachers = teachers_from_specs(config.teachers)
    landmark_teacher = YuNetTeacher(config.landmark_teacher) if config.landmark_teacher else None
    teacher_net = create_model(model_name, weights=teacher) if teacher else None
    prepare_run(config, model)
    if config.calibrate_teachers:
        teachers = calibrated_on_widerface(teachers, config, data, max_images, resume)
    detection_teacher = ensemble(teachers)
    dataset = widerface_training_set(
        data,
        config.image_size,
        model.input_preprocessing,
        config.seed,
        max_images,
        detection_teacher,
        config.augment,
    )
    if landmark_teacher is not None:
        dataset.landmarks = cached_teacher_landmarks(
            landmark_teacher,
            dataset.paths,
            dataset.boxes,
            Path(config.out_dir) / LANDMARK_CACHE,
            file_sha256(landmark_teacher.weights),
        )
    return train_single_shot(model, dataset, config, teacher_net, resume)


def train_single_shot(
    model: SingleShotDetector,
    dataset: FaceTrainingSet,
    config: TrainConfig,
    teacher: nn.Module | None = None,
    resume: bool = False,
) -> Path:
    """Train ``model`` on ``dataset`` (``config.image_size`` px squares) with its anchors'
    objective, SGD (momentum, weight decay) and the warm-up-then-steps schedule."""
    objective = AnchorObjective.for_model(
        model,
        config.image_size,
        teacher,
        DistillationLoss(config.distill_conf_weight, config.distill_loc_weight),
        SoftTargetDistillation(config.soft_conf_weight, config.soft_loc_weight),
        LandmarkLoss(config.landmark_weight),
    )
    parameters = list(model.parameters())
    if config.landmarks_only:
        if model.landmark_head is None:
            raise ConfigError(f"{type(model).__name__} has no landmark head to train alone")
        parameters = model.train_only(model.landmark_head)
    optimizer, schedule = sgd_warmup_steps(parameters, config)
    return fit(
        model,
        dataset,
        objective,
        optimizer,
        schedule,
        config,
        collate=collate_detection,
        hooks=[require_matched_faces(len(dataset), config.image_size)],
        resume=resume,
    )


def widerface_training_set(
    data: Path,
    image_size: int,
    preprocessing: Preprocessing,
    seed: int,
    max_images: int | None = None,
    teacher: Teacher | None = None,
    augment: str = "faceboxes",
) -> FaceTrainingSet:
    """WIDER FACE train images (the first ``max_images`` when given) and their faces, leaving out
    those flagged invalid, with ``augment``'s augmentation to ``image_size`` px squares (FaceBoxes';
    or ``small_faces``: mosaics of these images, zoom-out, then FaceBoxes'), padding with the
    network's mean colour, and ``teacher``'s detections on each augmented image when given.

    Raises:
        DatasetError: the split is missing or malformed, or no image has a valid face.
    """
    split = load_split(data, "train")
    records = split.records[:max_images] if max_images else split.records
    if not any(r.valid.any() for r in records):
        raise DatasetError(f"none of the {len(records)} training images in {data} has a valid face")
    dataset = FaceTrainingSet(
        [split.image_path(r) for r in records],
        [r.boxes[r.valid] for r in records],
        faceboxes_train_transform(image_size, _mean_bgr(preprocessing)),
        preprocessing,
        seed=seed,
        teacher=teacher,
    )
    if augment == "small_faces":  # its mosaics draw the data set's other images
        dataset.transform = small_face_train_transform(
            image_size, _mean_bgr(preprocessing), dataset.raw_sample
        )
    return dataset


def calibrated_on_widerface(
    teachers: list[Teacher],
    config: TrainConfig,
    data: Path,
    max_images: int | None = None,
    resume: bool = False,
) -> list[Teacher]:
    """Each teacher with its scores calibrated on the WIDER FACE train images (the first
    ``max_images``) at their own size; the fitted maps go into ``config.extra`` (and so into the
    checkpoints), under ``teacher_calibration``, by teacher spec. A resumed run takes the maps its
    checkpoint holds (fitting them again would run every teacher over the images, minutes each).

    Raises:
        WeightsError: ``resume`` without a readable ``last.pth`` in ``config.out_dir``.
    """
    stored = _stored_calibrations(Path(config.out_dir) / "last.pth") if resume else {}
    split = load_split(data, "train")
    images = [(split.image_path(r), r.boxes, r.valid) for r in split.records[:max_images]]
    calibrated, fitted = [], {}
    for spec, teacher in zip(config.teachers, teachers):
        if spec in stored:
            calibration = ScoreCalibration(
                tuple(stored[spec]["scores"]), tuple(stored[spec]["probabilities"])
            )
        else:
            calibration = calibrate(teacher, images)
        calibrated.append(CalibratedTeacher(teacher, calibration))
        fitted[spec] = {"scores": calibration.scores, "probabilities": calibration.probabilities}
    config.extra["teacher_calibration"] = fitted
    return calibrated


def _stored_calibrations(last: Path) -> dict[str, dict[str, list[float]]]:
    """The teacher calibrations recorded in the checkpoint ``last`` (by teacher spec).

    Raises:
        WeightsError: ``last`` does not exist (nothing to resume) or cannot be read.
    """
    if not last.is_file():
        raise WeightsError(f"nothing to resume: {last} does not exist")
    return load_checkpoint(last).get("config", {}).get("extra", {}).get("teacher_calibration", {})


def _mean_bgr(preprocessing: Preprocessing) -> tuple[float, float, float]:
    """The network's mean colour in BGR order (the padding that reads as zero to it)."""
    mean = preprocessing.mean
    return (mean[2], mean[1], mean[0]) if preprocessing.channel_order == "RGB" else mean
