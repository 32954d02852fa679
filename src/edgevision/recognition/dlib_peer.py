"""dlib's face embedding (a 29-layer ResNet, 99.38% on LFW) with its 5-point shape predictor: the
recognition teacher and the peer we measure against. An optional extra
(``pip install 'edgevision[dlib]'``: ``dlib-bin`` and ``face_recognition_models``).

dlib aligns faces itself (150x150 chips from its own 5 points: eye corners and the nose base,
not the ArcFace points), so it takes a face box, not our landmarks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgevision.errors import MissingDependencyError, ShapeError
from edgevision.recognition.alignment import as_bgr

_EXTRA = "pip install 'edgevision[dlib]'"
EMBEDDING_SIZE = 128


def _models_dir() -> Path:
    """The weights folder of ``face_recognition_models``, found without importing it (its
    ``__init__`` needs ``pkg_resources``, which new setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(f"the dlib peer needs face_recognition_models: {_EXTRA}")
    return Path(spec.origin).parent / "models"


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise MissingDependencyError(f"the dlib peer needs dlib: {_EXTRA}") from None
    return dlib


def dlib_available() -> bool:
    """Whether dlib and its models are installed (tests and benchmarks skip the peer otherwise)."""
    try:
        _dlib()
        return (_models_dir() / "dlib_face_recognition_resnet_model_v1.dat").is_file()
    except MissingDependencyError:
        return False


class DlibEmbedder:
    """dlib's 128-d face descriptor of a face in an image.

    Descriptors are not normalised (dlib's own metric is the Euclidean distance, same person
    under 0.6). dlib runs on one thread.
    """

    def __init__(self) -> None:
        dlib = _dlib()
        models = _models_dir()
        self._shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self._net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self._finder = dlib.get_frontal_face_detector()  # HOG, for face crops (embed_crop)
        self._rectangle = dlib.rectangle

    def embed(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Args: image ``(H, W, 3)`` uint8 BGR or grey ``(H, W)``; box ``(4,)`` xyxy pixels.
        Returns ``(128,)`` float32."""
        box = np.asarray(box, np.float64)
        if box.shape != (4,) or not np.isfinite(box).all():
            raise ShapeError(f"a face box must be 4 finite numbers xyxy, got {box}")
        rgb = np.ascontiguousarray(cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2RGB))
        rect = self._rectangle(*(int(round(v)) for v in box))
        shape = self._shape(rgb, rect)
        return np.asarray(self._net.compute_face_descriptor(rgb, shape), np.float32)

    def embed_crop(self, image: np.ndarray) -> np.ndarray:
        """The descriptor of an image that is already a face crop (ORL): the face box is dlib's
        own HOG detection in it (upsampled once), the largest, as a dlib user would find it;
        the whole image when HOG finds none. Returns ``(128,)`` float32."""
        image = as_bgr(image)
        found = self._finder(np.ascontiguousarray(image[:, :, ::-1]), 1)
        if len(found):
            best = max(found, key=lambda r: r.width() * r.height())
            box = np.array([best.left(), best.top(), best.right(), best.bottom()], np.float64)
        else:
            box = np.array([0, 0, image.shape[1] - 1, image.shape[0] - 1], np.float64)
        return self.embed(image, box)
