"""Training hyper-parameters and the checks a run passes before it loads any data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from edgevision.errors import ConfigError
from edgevision.validation import check_number

# TrainConfig's numbers, by the range they must lie in (all finite).
POSITIVE = ("image_size", "batch_size", "epochs", "lr", "gamma", "log_every", "distill_weight")
NON_NEGATIVE = (
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "workers",
    "distill_conf_weight",
    "distill_loc_weight",
    "soft_conf_weight",
    "soft_loc_weight",
    "landmark_weight",
)


AUGMENTATIONS = ("faceboxes", "small_faces")
# The class heads an embedding network may train with (edgevision.training.face_embedding).
MARGIN_LOSSES = ("arcface", "cosface", "softmax")


@dataclass
class TrainConfig:
    """Training hyper-parameters. Defaults are FaceBoxes.PyTorch's (which follow the paper,
    Sec. 4.1: SGD, momentum 0.9, weight decay 5e-4, batch 32, lr 1e-3 for 200 epochs then 10x
    less), except the warm-up, which is ours. Building one with a NaN, an inf or an out-of-range
    value raises :class:`ConfigError`."""

    out_dir: Path
    image_size: int = 1024  # square training input (Sec. 4.1); use less on a CPU
    batch_size: int = 32  # per process
    epochs: int = 300  # FaceBoxes.PyTorch: 300
    lr: float = 1e-3  # Sec. 4.1
    momentum: float = 0.9  # Sec. 4.1
    weight_decay: float = 5e-4  # Sec. 4.1
    warmup_epochs: float = 5.0  # ours: linear from lr/10 (FaceBoxes.PyTorch has none)
    milestones: tuple[int, ...] = (200, 250)  # epochs where lr drops by gamma (FaceBoxes.PyTorch)
    gamma: float = 0.1
    workers: int = 2  # data-loading processes
    seed: int = 0  # initial weights, shuffling and augmentation
    distill_conf_weight: float = 1.0  # ours: KL to the teacher's class probabilities
    distill_loc_weight: float = 1.0  # ours: smooth L1 to the teacher's offsets where it sees a face
    # Teachers of any architecture whose detections on each augmented image are soft targets
    # (edgevision.training.teachers.teachers_from_specs: "yunet=FILE.onnx", "NAME=WEIGHTS", "NAME").
    teachers: tuple[str, ...] = ()
    # ours: map each teacher's scores to how often they are labelled faces of the training images
    # (edgevision.training.teacher_calibration), fitted before training starts
    calibrate_teachers: bool = False
    soft_conf_weight: float = 1.0  # ours: KL to the teachers' face probability on every anchor
    soft_loc_weight: float = 1.0  # ours: smooth L1 to the teachers' confident boxes
    # The training augmentation: "faceboxes" (FaceBoxes' crop, which enlarges faces, Sec. 4.1) or
    # "small_faces" (ours: mosaics and zoom-out first, edgevision.data.transforms)
    augment: str = "faceboxes"
    # Embedding networks (recipe face_embedding): the class head on identity data, its margin
    # and scale (None: the head's defaults, ArcFace's m = 0.5, CosFace's 0.35, s = 64), and the
    # weight of the distillation term, 1 - cosine to the teacher's embedding. Ours: 20, because
    # that term's gradient is divided by the embedding's norm, ~sqrt(128) ~ 11 after its BN
    # (edgevision.training.face_embedding)
    margin_loss: str = "arcface"
    margin: float | None = None
    scale: float | None = None
    distill_weight: float = 20.0
    # ours: a YuNet ONNX file whose five landmarks on each labelled face it finds (IoU >= 0.5) train
    # the model's landmark head (edgevision.training.landmark_targets); builds the model with one
    landmark_teacher: str | None = None
    landmark_weight: float = 1.0  # RetinaFace: 1 (its box term 2, as FaceBoxes')
    # ours: train the landmark head only; every other weight, batch-norm statistics included, stays
    # as it started (--init-weights), so the detections do not change by a bit
    landmarks_only: bool = False
    log_every: int = 10  # steps between log records
    extra: dict[str, object] = field(default_factory=dict)  # recorded in the checkpoint, e.g. the data path

    def __post_init__(self) -> None:
        for name in POSITIVE + NON_NEGATIVE:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ConfigError(f"training option {name} must be a finite number, got {value}")
            if value < 0 or (value == 0 and name in POSITIVE):
                kind = "positive" if name in POSITIVE else "zero or more"
                raise ConfigError(f"training option {name} must be {kind}, got {value}")
        if self.momentum >= 1:
            raise ConfigError(f"training option momentum must be below 1, got {self.momentum}")
        # One spec given alone is one teacher, not a sequence of one-letter ones.
        self.teachers = (self.teachers,) if isinstance(self.teachers, str) else tuple(self.teachers)
        if self.calibrate_teachers and not self.teachers:
            raise ConfigError("calibrating teachers needs a teacher to calibrate (--soft-teacher)")
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.margin_loss not in MARGIN_LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(MARGIN_LOSSES)}, got {self.margin_loss!r}")
        if self.margin_loss == "softmax" and (self.margin is not None or self.scale is not None):
            raise ConfigError(
                "softmax has no margin or scale; --margin and --scale are for arcface and cosface"
            )
        if self.margin is not None:  # beyond pi/2 ArcFace's target logit no longer falls with the angle
            check_number("training option margin", self.margin, 0.0, math.pi / 2)
        if self.scale is not None:
            check_number("training option scale", self.scale, 0.0, 1024.0, low_open=True)
        if self.landmarks_only and not self.landmark_teacher:
            raise ConfigError("training the landmark head only needs a landmark teacher (--landmark-teacher)")
        if any(m < 0 for m in self.milestones):
            raise ConfigError(f"training milestones must be epochs, 0 or more; got {self.milestones}")


def prepare_run(config: TrainConfig, model: nn.Module) -> None:
    """Check what can be checked before any data is read, and create the output folder.

    Raises:
        ConfigError: the size does not suit the model (:func:`check_input_size`), or ``out_dir``
            cannot be a folder.
    """
    check_input_size(config, model)
    out_dir = Path(config.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, no permission, a read-only disk
        raise ConfigError(f"cannot use {out_dir} as the output folder: {error.strerror or error}") from None


def check_input_size(config: TrainConfig, model: nn.Module) -> None:
    """Refuse a training size ``model`` cannot use.

    A network with a fixed input (``fixed_input_size``, e.g. an embedding network's GDConv spans
    its whole final map) trains at that size only. An anchor detector's size must be a multiple of
    its largest anchor stride, and at least that stride: then every level's feature map tiles the
    input exactly, so each anchor sits on the cell whose prediction it is trained against (at 33 px
    FaceBoxes has no usable anchor and the loss is 0).

    Raises:
        ConfigError: the size does not suit the model.
    """
    fixed = getattr(model, "fixed_input_size", None)
    if fixed is not None:
        if tuple(fixed) != (config.image_size, config.image_size):
            raise ConfigError(
                f"image size {config.image_size} does not suit {type(model).__name__}: it takes "
                f"{fixed[0]}x{fixed[1]} inputs only"
            )
        return
    stride = model.max_stride
    if config.image_size < stride or config.image_size % stride:
        nearest = max(stride, round(config.image_size / stride) * stride)
        raise ConfigError(
            f"image size {config.image_size} does not suit {type(model).__name__}: it must be a multiple "
            f"of its largest anchor stride, {stride} px (e.g. {nearest})"
        )
