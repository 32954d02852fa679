"""Face recognition end to end: an image in, a unit embedding out; two images in, the same person
or not.

:meth:`Recognizer.embed` finds the faces with a detector (default: the registry's default
detector), keeps one (:data:`MIN_FACE_SCORE`, then the largest: see :meth:`Recognizer.aligned_face`),
aligns it onto the ArcFace template (:func:`edgevision.recognition.alignment.align_face`) and runs
the embedding network (MobileFaceNet by default; torch, or a plan built by ``edgevision build``)
on the 112x112 crop and on its mirror image. The two outputs are summed and L2-normalised, as the
LFW protocol embeds "the image plus its mirror"; the sum also makes the embedding of a mirrored
crop exactly that of the crop.

Distance: the cosine distance ``1 - cos(a, b)`` of two unit embeddings, in [0, 2] (0: the same
direction). Two faces are the same person when it is at most the threshold, which comes from the
weights' model card (its ``threshold`` field) unless one is given.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from edgevision.data.io import read_image
from edgevision.data.preprocessing import Preprocessing, model_preprocessing
from edgevision.detection.detector import Detector, torch_device
from edgevision.errors import ConfigError, NoFaceError, ShapeError, UnknownModelError
from edgevision.models import (
    DETECTION,
    RECOGNITION,
    check_task,
    create_model,
    default_model,
    list_models,
    model_info,
    weights_card,
)
from edgevision.recognition.alignment import ALIGNED_SIZE, align_face, as_bgr, face_crop_input
from edgevision.validation import check_number

if TYPE_CHECKING:
    from edgevision.deploy.runtime import Engine
    from edgevision.detection.detections import Detections

PLAN_SUFFIX = ".plan"
# The detections a face is chosen from score at least this (the `detect` command's default).
MIN_FACE_SCORE = 0.5
# The cosine distance is in [0, 2]; a threshold outside it calls every pair the same or none.
MAX_DISTANCE = 2.0
# Where the five landmarks sit in a face box of the default detector, as fractions (x of the box's
# width from its left edge, y of its height from its top), for detectors without landmarks:
# the medians of YuNet's landmarks in FaceBoxes' boxes over WIDER val faces 40 px wide or more,
# made mirror-symmetric (`python benchmarks/box_landmarks.py`: 148 faces in 70 images).
BOX_LANDMARKS = np.array(
    [[0.27, 0.385], [0.73, 0.385], [0.50, 0.59], [0.30, 0.74], [0.70, 0.74]], dtype=np.float32
)

Image = np.ndarray | str | Path
# (B, ...) network inputs (preprocessed crops) -> (B, D) float32 embeddings, not normalised.
Network = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Verification:
    """The answer of :meth:`Recognizer.verify`.

    Attributes:
        same: ``distance <= threshold``.
        distance: cosine distance ``1 - cos`` of the two embeddings, in [0, 2].
        threshold: the cosine distance under which two faces are one person.
    """

    same: bool
    distance: float
    threshold: float


@dataclass(frozen=True)
class FaceEmbedding:
    """A face of an image, embedded (:meth:`Recognizer.embed_face`, :meth:`~Recognizer.embed_faces`).

    Attributes:
        box: ``(4,)`` xyxy float32 pixels of the image; ``None`` for a face crop (``crop=True``).
        score: the detector's confidence; ``None`` for a face crop.
        embedding: ``(D,)`` float32, unit norm.
        faces_found: the faces the image holds (scoring at least :data:`MIN_FACE_SCORE`); 1 for
            a face crop.
    """

    box: np.ndarray | None
    score: float | None
    embedding: np.ndarray
    faces_found: int = 1


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)`` of two ``(D,)`` embeddings, in [0, 2]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ShapeError(f"two (D,) embeddings of one size are compared, got {a.shape} and {b.shape}")
    return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def box_landmarks(box: np.ndarray) -> np.ndarray:
    """The five points :data:`BOX_LANDMARKS` puts in an ``(4,)`` xyxy box: ``(5, 2)`` pixels.
    An alignment from them fixes the face's position and scale, not its roll."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([x1, y1], np.float32) + BOX_LANDMARKS * np.array([x2 - x1, y2 - y1], np.float32)


class Recognizer:
    """Embeds faces and verifies pairs (see the module docstring).

    Args:
        network: ``(B, ...)`` preprocessed crops -> ``(B, D)`` embeddings (:class:`TorchNetwork`,
            or a plan's engine: :func:`load_recognizer` makes them).
        preprocessing: how a ``(112, 112, 3)`` uint8 BGR crop becomes the network's input.
        model_name: the registered embedding model.
        weights_sha256: the sha256 of the weights the network holds (a plan: of those it was
            built from), or ``None``: with ``model_name``, what makes two recognizers' embeddings
            comparable (a gallery refuses another model's vectors).
        threshold: the cosine distance under which :meth:`verify` says "same"; ``None``: verify
            refuses to answer (the weights have no card).
        detector: finds faces when ``crop=False``: a :class:`Detector` (anything whose
            ``detect(image)`` returns :class:`Detections`), or a function making one on first
            use (so that crops-only use never loads a detector).

    Attributes:
        embedding_size: D.
    """

    def __init__(
        self,
        network: Network,
        preprocessing: Preprocessing,
        *,
        model_name: str,
        weights_sha256: str | None = None,
        threshold: float | None = None,
        detector: Detector | Callable[[], Detector],
    ) -> None:
        self.network = network
        self.preprocessing = preprocessing
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.threshold = (
            None if threshold is None else check_number("threshold", threshold, 0.0, MAX_DISTANCE)
        )
        self._detector = detector
        # One forward of a blank crop: the embedding size, and a network that does not take
        # 112x112 crops fails here, at load, not on the first face.
        blank = np.zeros((1, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
        self.embedding_size = int(self._forward(blank).shape[1])

    @property
    def model_id(self) -> str:
        """``"<model>@<first 12 hex of the weights' sha256>"`` (the model alone when unknown):
        embeddings of two recognizers are comparable only when their ids are equal (a gallery
        keeps it)."""
        return f"{self.model_name}@{self.weights_sha256[:12]}" if self.weights_sha256 else self.model_name

    @property
    def detector(self) -> Detector:
        """The face detector (made on first use when the recognizer was given a function)."""
        if not hasattr(self._detector, "detect"):
            self._detector = self._detector()
        return self._detector

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Aligned face crops ``(N, 112, 112, 3)`` uint8 BGR -> ``(N, D)`` float32 unit embeddings,
        each the normalised sum of the network's output on the crop and on its mirror."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (ALIGNED_SIZE, ALIGNED_SIZE, 3) or crops.dtype != np.uint8:
            raise ShapeError(
                f"aligned crops are (N, {ALIGNED_SIZE}, {ALIGNED_SIZE}, 3) uint8, "
                f"got {crops.shape} {crops.dtype}"
            )
        both = self._forward(np.concatenate([crops, crops[:, :, ::-1]]))
        summed = both[: len(crops)] + both[len(crops) :]
        norms = np.linalg.norm(summed, axis=1, keepdims=True)
        return (summed / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed(self, image: Image, *, crop: bool = False) -> np.ndarray:
        """The ``(D,)`` float32 unit embedding of the face in ``image``: :meth:`embed_crops` of
        :meth:`aligned_face`.

        Raises:
            NoFaceError, ShapeError, InputFileError: as :meth:`aligned_face`.
        """
        return self.embed_face(image, crop=crop).embedding

    def embed_face(self, image: Image, *, crop: bool = False) -> FaceEmbedding:
        """:meth:`embed`, with the box and score of the face used and how many the image holds.

        Raises:
            NoFaceError, ShapeError, InputFileError: as :meth:`aligned_face`.
        """
        aligned, box, score, found = self._choose(image, crop)
        return FaceEmbedding(box, score, self.embed_crops(aligned[None])[0], found)

    def aligned_face(self, image: Image, *, crop: bool = False) -> np.ndarray:
        """The ``(112, 112, 3)`` uint8 BGR crop :meth:`embed` embeds.

        Args:
            image: ``(H, W, 3)`` uint8 BGR, grey ``(H, W)`` uint8, or an image file.
            crop: the image is already a face crop (e.g. ORL's): no detection, it is fitted to
                112x112 by :func:`~edgevision.recognition.alignment.face_crop_input`.

        Without ``crop``, the face used is the largest of those the detector scores at least
        :data:`MIN_FACE_SCORE` (in a photo taken of someone, the subject; a crowd's other faces
        are smaller). It is aligned on the detector's five landmarks when the detector predicts
        them (``Detections.landmarks``), else on :func:`box_landmarks` of its box.

        Raises:
            NoFaceError: no face scores :data:`MIN_FACE_SCORE` (the message names the file).
            ShapeError: not an image of those shapes.
            InputFileError: a file that cannot be read as an image.
        """
        return self._choose(image, crop)[0]

    def _choose(self, image: Image, crop: bool) -> tuple[np.ndarray, np.ndarray | None, float | None, int]:
        """The aligned crop of the face :meth:`aligned_face` describes, its box and score (``None``
        for a face crop), and the number of faces found."""
        pixels, name = _read(image)
        if crop:
            return face_crop_input(pixels), None, None, 1
        faces = self._faces(pixels, name)
        chosen = int(np.argmax(_areas(faces)))
        box, score = faces.boxes[chosen].numpy(), float(faces.scores[chosen])
        return _aligned(pixels, faces, [chosen])[0], box, score, len(faces)

    def embed_faces(self, image: Image) -> list[FaceEmbedding]:
        """Every face of ``image`` scoring at least :data:`MIN_FACE_SCORE`, by descending score,
        each embedded as :meth:`embed` embeds one (one batch for all of them).

        Raises:
            NoFaceError, ShapeError, InputFileError: as :meth:`embed`.
        """
        pixels, name = _read(image)
        faces = self._faces(pixels, name)
        embeddings = self.embed_crops(_aligned(pixels, faces, range(len(faces))))
        boxes, scores = faces.boxes.numpy(), faces.scores.tolist()
        return [FaceEmbedding(boxes[i], scores[i], embeddings[i], len(faces)) for i in range(len(faces))]

    def verify(self, a: Image, b: Image, *, crop: bool = False) -> Verification:
        """Whether the faces of ``a`` and ``b`` (see :meth:`embed`) are one person.

        Raises:
            ConfigError: the recognizer has no threshold (weights without a card, none given).
            NoFaceError, ShapeError, InputFileError: as :meth:`embed`, for either image.
        """
        if self.threshold is None:
            raise ConfigError(
                f"no verification threshold: the {self.model_name} weights have no model card "
                "with one; give a threshold (--threshold)"
            )
        distance = cosine_distance(self.embed(a, crop=crop), self.embed(b, crop=crop))
        return Verification(distance <= self.threshold, distance, self.threshold)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        batch = np.stack([self.preprocessing.network_input(c) for c in crops])
        out = np.asarray(self.network(batch), np.float32)
        if out.ndim != 2 or out.shape[0] != len(crops):
            raise ShapeError(f"{self.model_name} is not an embedding network: it returned {out.shape}")
        return out

    def _faces(self, image: np.ndarray, name: str) -> Detections:
        faces = self.detector.detect(as_bgr(image)).above(MIN_FACE_SCORE)
        if not len(faces):
            raise NoFaceError(f"no face found in {name} (none scores {MIN_FACE_SCORE} or more)")
        return faces


def _read(image: Image) -> tuple[np.ndarray, str]:
    """``image`` as ``(H, W, 3)`` or ``(H, W)`` uint8 pixels, and what messages call it."""
    if isinstance(image, str | Path):
        return read_image(image), str(image)
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ShapeError(
            f"a face image is (H, W, 3) uint8 BGR or (H, W) uint8 grey, got {image.shape} {image.dtype}"
        )
    return image, "the image"


def _areas(faces: Detections) -> np.ndarray:
    boxes = faces.boxes.numpy()
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _aligned(image: np.ndarray, faces: Detections, chosen: Iterable[int]) -> np.ndarray:
    """``(K, 112, 112, 3)`` crops of the ``chosen`` faces: on their landmarks, else their boxes."""
    landmarks = getattr(faces, "landmarks", None)
    points = [
        landmarks[i].numpy() if landmarks is not None else box_landmarks(faces.boxes[i].numpy())
        for i in chosen
    ]
    return np.stack([align_face(image, p) for p in points])


class TorchNetwork:
    """A torch embedding network as a :data:`Network`: ``(B, 3, H, W)`` float32 -> ``(B, D)``,
    in eval mode, without gradients, on ``threads`` CPU threads while it runs (``None``: torch's
    setting), the process's setting restored after."""

    def __init__(
        self, model: torch.nn.Module, device: torch.device | None = None, threads: int | None = None
    ):
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.threads = threads

    @torch.no_grad()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with _torch_threads(self.threads):
            return self.model(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


class PlanNetwork:
    """A plan's engine as a :data:`Network`: its first output for the batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.output = engine.outputs[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.run(batch)[self.output]


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_detector(device: torch.device | None = None) -> Detector:
    """The registry's default detector with its bundled weights."""
    name = default_model(DETECTION)
    return Detector(create_model(name, weights=model_info(name).weights_path), device=device)


def card_threshold(weights: str | Path, sha256: str | None = None) -> float | None:
    """The ``threshold`` of the model card beside ``weights`` (``None`` without one); with
    ``sha256``, only from a card of those weights (a card naming another sha256 is not theirs)."""
    card = weights_card(weights)
    if sha256 is not None and card.get("sha256") not in (None, sha256):
        return None
    threshold = card.get("threshold")
    return (
        None
        if threshold is None
        else check_number(f"the threshold of {weights}'s card", threshold, 0.0, MAX_DISTANCE)
    )


def load_recognizer(
    name: str | Path | None = None,
    weights: str | Path | None = None,
    *,
    detector: Detector | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
    threshold: float | None = None,
    plan_key: str | Path | None = None,
) -> Recognizer:
    """A ready :class:`Recognizer`: the registered recognition model ``name`` (default: the
    registry's default, MobileFaceNet) with ``weights`` (default: its bundled ones), or a plan
    file built from one by ``edgevision build`` (``name`` ending in ``.plan``), run by the engine.

    Args:
        detector: finds faces for :meth:`Recognizer.embed` (default: the default detector with
            its bundled weights, loaded on first use).
        device: where the torch network and the default detector run (not for a plan).
        threads: CPU threads of the embedding network (torch's or the plan's); ``None``: the
            process's torch setting, or the plan's tactic.
        threshold: the verification threshold, a cosine distance in [0, 2]; default: the
            ``threshold`` of the weights' model card (``<weights stem>.json``; for a plan, the
            card of the weights it was built from, found as the plan's source names them).
        plan_key: a plan read with a key (this file, else the one ``EDGEVISION_PLAN_KEY``
            names) must carry its signature.

    Raises:
        UnknownModelError: ``name`` is not a recognition model, or the plan was not built from one.
        WeightsError: the weights are missing, unreadable or do not fit.
        ConfigError: ``weights`` or ``device`` with a plan, ``plan_key`` without one, a bad
            device or threshold.
    """
    if threshold is not None:
        check_number("threshold", threshold, 0.0, MAX_DISTANCE)
    name = default_model(RECOGNITION) if name is None else str(name)
    if name.endswith(PLAN_SUFFIX):
        if weights is not None or device is not None:
            raise ConfigError(
                f"{name} is a plan: it holds its weights (no weights) and runs on its backend (no device)"
            )
        from edgevision.deploy.plan_signing import key_from  # onnx and onnxruntime, for plans only
        from edgevision.deploy.runtime import load_engine

        engine = load_engine(Path(name), threads, key=key_from(plan_key))
        return recognizer_from_engine(engine, detector=detector, threshold=threshold)
    if plan_key is not None:
        raise ConfigError(f"a plan key (--plan-key) is for a plan file (NAME{PLAN_SUFFIX}), not {name!r}")
    check_task(name, RECOGNITION)
    device = torch_device(device)
    path = Path(weights) if weights is not None else model_info(name).weights_path
    model = create_model(name, weights=path)
    return Recognizer(
        TorchNetwork(model, device, threads),
        model_preprocessing(model),
        model_name=name,
        weights_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        threshold=threshold if threshold is not None else card_threshold(path),
        detector=detector or (lambda: default_detector(device)),
    )


def recognizer_from_engine(
    engine: Engine, *, detector: Detector | None = None, threshold: float | None = None
) -> Recognizer:
    """A recognizer around a loaded plan of a recognition model (see :func:`load_recognizer`).

    Raises:
        UnknownModelError: the plan was not built from a registered recognition model.
    """
    source = engine.plan.source
    name = source.get("model")
    if name not in list_models(RECOGNITION):
        raise UnknownModelError(
            f"{engine.name} was not built from a recognition model (its source is {name!r})"
        )
    if threshold is None and source.get("weights"):
        info = model_info(name)
        bundled = info.weights is not None and Path(info.weights).name == source["weights"]
        threshold = card_threshold(
            info.weights_path if bundled else source["weights"], source.get("weights_sha256")
        )
    return Recognizer(
        PlanNetwork(engine),
        engine.preprocessing,
        model_name=name,
        weights_sha256=source.get("weights_sha256"),
        threshold=threshold,
        detector=detector or default_detector,
    )


__all__ = [
    "MIN_FACE_SCORE",
    "FaceEmbedding",
    "PlanNetwork",
    "Recognizer",
    "TorchNetwork",
    "Verification",
    "box_landmarks",
    "card_threshold",
    "cosine_distance",
    "load_recognizer",
    "recognizer_from_engine",
]
