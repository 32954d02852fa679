"""Teachers for distillation: detectors whose detections on a training image, down to a low score,
become a student's soft targets (:func:`edgevision.detection.losses.build_soft_targets`).

A teacher is any callable ``(image (H, W, 3) uint8 BGR) -> Detections`` (``(K, 4)`` xyxy boxes in
the image's pixels, ``(K,)`` scores in [0, 1], best first). It runs on the augmented image the
student sees, in the data-loading processes (:class:`edgevision.training.detection_dataset.FaceTrainingSet`),
so it must be deterministic (a resumed run repeats the stream exactly) and picklable.

Teachers keep detections down to :data:`SCORE_FLOOR`: the faces a teacher is unsure of are what
soft targets carry beyond the labels' boxes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from edgevision.detection.detections import NUM_LANDMARKS, Detections
from edgevision.detection.detector import Detector, DetectorModel
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import ConfigError, ShapeError, UnknownModelError, WeightsError
from edgevision.models import DETECTION, create_model, list_models, model_info

Teacher = Callable[[np.ndarray], Detections]

SCORE_FLOOR = 0.05  # the lowest score a teacher keeps, as FaceBoxes' test settings keep boxes
YUNET = "yunet"  # the teacher spec name of YuNet (an ONNX file run by OpenCV, not a registered model)


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"a teacher takes an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")


class YuNetTeacher:
    """YuNet (libfacedetection) through OpenCV's ``cv2.FaceDetectorYN``, at the image's own size.

    YuNet's scores are already in [0, 1] (the geometric mean of its class and objectness outputs)
    and are used as they are; below 0.7 they overstate how often a box is a face (on the WIDER
    train images, boxes at 0.5-0.7 are labelled faces 36% of the time), which
    :class:`~edgevision.training.teacher_calibration.CalibratedTeacher` corrects. Boxes are
    clipped to the image (YuNet's may stick out of it). Each face's five landmarks come in
    ``Detections.landmarks`` (YuNet's order is ours: the eye on the image's left first), not
    clipped.

    Args:
        weights: a YuNet ONNX file, e.g. ``yunet_n_dynamic.onnx`` (a dynamic-input model: a fixed
            640x640 one cannot take other sizes).
        score_floor: detections scoring below this are dropped.
        nms_iou: YuNet's own NMS IoU threshold (0.3, as our detectors').
        top_k: at most this many boxes go into NMS.

    Raises:
        WeightsError: the file is missing or OpenCV cannot read it as a YuNet model.
    """

    def __init__(
        self, weights: str | Path, score_floor: float = SCORE_FLOOR, nms_iou: float = 0.3, top_k: int = 5000
    ) -> None:
        self.weights = Path(weights)
        self.score_floor = score_floor
        self.nms_iou = nms_iou
        self.top_k = top_k
        self._detector: cv2.FaceDetectorYN | None = None
        self._pid = 0
        if not self.weights.is_file():
            raise WeightsError(f"YuNet weights not found: {self.weights}")
        # A file OpenCV cannot read, or another network, fails here, not in a data-loading process.
        try:
            self(np.zeros((64, 64, 3), np.uint8))
        except cv2.error:
            raise self._not_yunet() from None

    def _not_yunet(self) -> WeightsError:
        return WeightsError(f"{self.weights} is not a YuNet face detector OpenCV can run")

    def _yunet(self) -> cv2.FaceDetectorYN:
        """This process's OpenCV detector (made again after a fork: OpenCV's thread pool and
        network state are not shared safely with the parent)."""
        if self._detector is None or self._pid != os.getpid():
            # OpenCV 5 warns on stderr, at every creation, that its new graph engine takes no
            # target: noise in every data-loading process, so its log is quieted meanwhile.
            logging = cv2.utils.logging
            level = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_ERROR)
            try:
                self._detector = cv2.FaceDetectorYN.create(
                    str(self.weights), "", (320, 320), self.score_floor, self.nms_iou, self.top_k
                )
            except cv2.error:
                raise self._not_yunet() from None
            finally:
                logging.setLogLevel(level)
            self._pid = os.getpid()
        return self._detector

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_detector": None}  # OpenCV objects do not pickle

    def __call__(self, image: np.ndarray) -> Detections:
        _check_image(image)
        height, width = image.shape[:2]
        yunet = self._yunet()
        yunet.setInputSize((width, height))
        _, faces = yunet.detect(image)
        if faces is None:
            return Detections.empty(landmarks=True)
        boxes = faces[:, :4].astype(np.float32)
        boxes[:, 2:] += boxes[:, :2]  # (x, y, w, h) -> xyxy
        boxes = boxes.clip(0, [width, height, width, height]).astype(np.float32)
        landmarks = faces[:, 4:14].reshape(-1, NUM_LANDMARKS, 2).astype(np.float32)
        scores = faces[:, 14].astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        return Detections(
            torch.from_numpy(boxes[order]),
            torch.from_numpy(scores[order]),
            torch.from_numpy(landmarks[order]),
        )


class DetectorTeacher:
    """Any edgevision :class:`Detector` as a teacher, on the CPU (the data-loading processes have
    no GPU of their own) with its confidence lowered to ``score_floor``.

    Args:
        model: a detector model (:class:`DetectorModel`), e.g. FaceBoxes with the reference weights.
        score_floor: detections scoring at most this are dropped.
    """

    def __init__(self, model: DetectorModel, score_floor: float = SCORE_FLOOR) -> None:
        self.detector = Detector(model, PostProcess(confidence=score_floor), device=torch.device("cpu"))

    def __call__(self, image: np.ndarray) -> Detections:
        _check_image(image)
        return self.detector.detect(image)


class EnsembleTeacher:
    """Several teachers' detections merged by NMS: of the boxes overlapping by more than
    ``nms_iou``, the highest-scoring is kept with its own box and score.

    Why NMS with the max score rather than weighted box fusion: the teachers draw faces
    differently (YuNet's boxes are taller than FaceBoxes'), so an average of their boxes is
    neither's; and a mean score would halve every face that one teacher sees and another misses,
    which are the small faces the stronger teacher is there for. The cost: a false positive of
    any teacher passes through with its score. Landmarks are kept when every teacher gives them.
    """

    def __init__(self, teachers: Sequence[Teacher], nms_iou: float = 0.3) -> None:
        if not teachers:
            raise ConfigError("an ensemble of teachers needs at least one teacher")
        self.teachers = list(teachers)
        self.nms_iou = nms_iou

    def __call__(self, image: np.ndarray) -> Detections:
        found = [teacher(image) for teacher in self.teachers]
        boxes = torch.cat([d.boxes.float() for d in found])
        scores = torch.cat([d.scores.float() for d in found])
        kept = nms(boxes, scores, self.nms_iou)
        landmarks = None
        if all(d.landmarks is not None for d in found):
            landmarks = torch.cat([d.landmarks.float() for d in found])[kept]
        return Detections(boxes[kept], scores[kept], landmarks)


def teachers_from_specs(specs: Sequence[str], score_floor: float = SCORE_FLOOR) -> list[Teacher]:
    """The teachers named by ``specs``, each ``yunet=FILE.onnx``, ``NAME=WEIGHTS`` for a
    registered detector, or ``NAME`` for a registered detector with its bundled weights. Every
    weights file is read here, before any training data.

    Raises:
        ConfigError: a spec is malformed.
        UnknownModelError: a name is neither ``yunet`` nor a registered detector.
        WeightsError: a weights file is missing or does not fit.
    """
    return [_one_teacher(spec, score_floor) for spec in specs]


def ensemble(teachers: Sequence[Teacher]) -> Teacher | None:
    """None for no teacher, the teacher itself for one, an :class:`EnsembleTeacher` for more."""
    if len(teachers) < 2:
        return teachers[0] if teachers else None
    return EnsembleTeacher(teachers)


def _one_teacher(spec: str, score_floor: float) -> Teacher:
    name, _, weights = spec.partition("=")
    name = name.strip()
    if not name or ("=" in spec and not weights.strip()):
        example = f"{YUNET}=yunet_n_dynamic.onnx"
        raise ConfigError(f"a teacher is NAME=WEIGHTS or NAME (e.g. {example}), got {spec!r}")
    if name == YUNET:
        if not weights:
            raise ConfigError(f"the {YUNET} teacher needs its ONNX file: {YUNET}=PATH")
        return YuNetTeacher(weights, score_floor)
    detectors = list_models(DETECTION)
    if name not in detectors:
        raise UnknownModelError(f"unknown teacher {name!r}; teachers: {', '.join([YUNET, *detectors])}")
    path = Path(weights) if weights else model_info(name).weights_path
    return DetectorTeacher(create_model(name, weights=path), score_floor)
