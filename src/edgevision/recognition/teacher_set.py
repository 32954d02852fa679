"""A distillation set for face embeddings: the labelled faces of the WIDER FACE training images,
aligned onto the ArcFace template with YuNet's five landmarks, each with dlib's embedding of the
face and of its mirror image (the teacher, :mod:`edgevision.recognition.dlib_peer`).

No identities are needed: a student learns to reproduce the teacher's embedding on many faces
(6,590 WIDER train boxes, of which the ones large and clear enough for both teachers are kept),
then fine-tunes with a margin loss on the few labelled people there are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgevision.data.io import read_image, save_npz
from edgevision.data.widerface import load_split
from edgevision.detection.matcher import BACKGROUND, match_greedy
from edgevision.errors import DatasetError
from edgevision.recognition.alignment import ALIGNED_SIZE, align_face
from edgevision.recognition.dlib_peer import EMBEDDING_SIZE, DlibEmbedder
from edgevision.training.teachers import YuNetTeacher

MIN_FACE = 40  # px, the shorter side of a kept face: dlib's chips and the landmarks degrade below
MATCH_IOU = 0.5  # a labelled face takes YuNet's landmarks from the detection overlapping it this much
MIN_YUNET_SCORE = 0.7  # YuNet's landmarks on faces it is unsure of are unreliable


@dataclass(frozen=True)
class TeacherSet:
    """Aligned faces with their teacher embeddings.

    Attributes:
        crops: ``(N, 112, 112, 3)`` uint8 BGR faces aligned onto the ArcFace template.
        embeddings: ``(N, 128)`` float32 dlib descriptors of the faces.
        embeddings_flipped: ``(N, 128)`` float32 dlib descriptors of the mirrored faces (a student
            that sees ``crops[i, :, ::-1]`` learns ``embeddings_flipped[i]``).
        sources: ``(N,)`` str, ``"<event>/<image>#<face index>"``.
    """

    crops: np.ndarray
    embeddings: np.ndarray
    embeddings_flipped: np.ndarray
    sources: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.crops)
        shapes = {
            "crops": (self.crops.shape, (n, ALIGNED_SIZE, ALIGNED_SIZE, 3)),
            "embeddings": (self.embeddings.shape, (n, EMBEDDING_SIZE)),
            "embeddings_flipped": (self.embeddings_flipped.shape, (n, EMBEDDING_SIZE)),
            "sources": (self.sources.shape, (n,)),
        }
        for name, (got, expected) in shapes.items():
            if got != expected:
                raise DatasetError(f"teacher set: {name} is {got}, expected {expected}")
        if self.crops.dtype != np.uint8:
            raise DatasetError(f"teacher set: crops must be uint8, got {self.crops.dtype}")
        for name in ("embeddings", "embeddings_flipped"):
            if not np.isfinite(getattr(self, name)).all():
                raise DatasetError(f"teacher set: {name} holds NaN or inf values")

    def __len__(self) -> int:
        return len(self.crops)


def build_teacher_set(
    widerface_root: str | Path,
    yunet_weights: str | Path,
    *,
    split: str = "train",
    min_face: int = MIN_FACE,
    progress: Callable[[int, int], None] | None = None,
) -> TeacherSet:
    """Align and embed the labelled faces of a WIDER FACE split.

    A face is kept when it is valid, its shorter side is at least ``min_face`` px, and a YuNet
    detection (score >= 0.7, box clipped to the image) overlaps it with IoU >= 0.5 (each
    detection serves one face, best overlap first); the face is aligned with that detection's
    landmarks and embedded by dlib on its labelled box (dlib's own alignment).

    Args:
        progress: called with ``(images done, images)`` after each image.
    """
    records = load_split(widerface_root, split)
    yunet = YuNetTeacher(yunet_weights, score_floor=MIN_YUNET_SCORE)
    teacher = DlibEmbedder()
    crops, embeddings, flipped, sources = [], [], [], []
    for done, record in enumerate(records.records, 1):
        keep = record.valid & ((record.boxes[:, 2:] - record.boxes[:, :2]).min(1) >= min_face)
        if keep.any():
            image = read_image(records.image_path(record))
            mirror = np.ascontiguousarray(image[:, ::-1])
            width = image.shape[1]
            found = yunet(image)
            faces = np.flatnonzero(keep)
            partners = match_greedy(torch.from_numpy(record.boxes[faces]), found.boxes, MATCH_IOU)
            for face, detection in zip(faces, partners.tolist()):
                if detection == BACKGROUND:
                    continue
                box = record.boxes[face].astype(np.float64)
                crops.append(align_face(image, found.landmarks[detection].numpy()))
                embeddings.append(teacher.embed(image, box))
                mirrored_box = np.array([width - 1 - box[2], box[1], width - 1 - box[0], box[3]])
                flipped.append(teacher.embed(mirror, mirrored_box))
                sources.append(f"{record.key}#{face}")
        if progress is not None:
            progress(done, len(records.records))
    if not crops:
        raise DatasetError(f"no face of WIDER FACE {split} passed the teacher set's filters")
    return TeacherSet(
        np.stack(crops), np.stack(embeddings), np.stack(flipped), np.array(sources, dtype=np.str_)
    )


def save_teacher_set(teacher_set: TeacherSet, path: str | Path) -> None:
    """Write a ``.npz`` atomically (nothing half-written if interrupted)."""
    save_npz(
        path,
        crops=teacher_set.crops,
        embeddings=teacher_set.embeddings,
        embeddings_flipped=teacher_set.embeddings_flipped,
        sources=teacher_set.sources,
    )


def load_teacher_set(path: str | Path) -> TeacherSet:
    """Read a set written by :func:`save_teacher_set`; one-line errors on anything else."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"teacher set not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {name: data[name] for name in ("crops", "embeddings", "embeddings_flipped", "sources")}
    except (OSError, ValueError, KeyError) as error:
        raise DatasetError(f"{path} is not a teacher set (.npz of crops and embeddings): {error}") from None
    return TeacherSet(**fields)
