"""The value type every detector returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from edgevision.boxes import LANDMARK_NAMES, NUM_LANDMARKS
from edgevision.errors import ShapeError

__all__ = ["LANDMARK_NAMES", "NUM_LANDMARKS", "Detections"]


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections on one image, sorted by descending score.

    Attributes:
        boxes: ``(N, 4)`` xyxy float32 pixels of the original image.
        scores: ``(N,)`` float32 confidences in [0, 1].
        landmarks: ``(N, 5, 2)`` float32 ``(x, y)`` pixels of each face's eye on the image's left,
            eye on the image's right, nose tip, left and right mouth corners
            (:data:`LANDMARK_NAMES`), or ``None`` for a detector without landmarks.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    landmarks: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ShapeError(f"Detections.boxes must be (N, 4), got {tuple(self.boxes.shape)}")
        count = self.boxes.shape[0]
        if self.scores.shape != (count,):
            raise ShapeError(f"Detections.scores must be ({count},), got {tuple(self.scores.shape)}")
        if self.landmarks is not None and self.landmarks.shape != (count, NUM_LANDMARKS, 2):
            shape = tuple(self.landmarks.shape)
            raise ShapeError(f"Detections.landmarks must be ({count}, {NUM_LANDMARKS}, 2), got {shape}")

    @classmethod
    def empty(cls, landmarks: bool = False) -> Detections:
        """No detections; with ``landmarks``, an empty ``(0, 5, 2)`` landmark tensor."""
        return cls(
            torch.zeros((0, 4)), torch.zeros((0,)), torch.zeros((0, NUM_LANDMARKS, 2)) if landmarks else None
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Index with an integer, a slice, a bool mask or an index tensor; boxes stay 2-D."""
        landmarks = None
        if self.landmarks is not None:
            landmarks = self.landmarks[index].reshape(-1, NUM_LANDMARKS, 2)
        return Detections(self.boxes[index].reshape(-1, 4), self.scores[index].reshape(-1), landmarks)

    def to(self, device: torch.device | str) -> Detections:
        landmarks = None if self.landmarks is None else self.landmarks.to(device)
        return Detections(self.boxes.to(device), self.scores.to(device), landmarks)

    def above(self, threshold: float) -> Detections:
        """The detections whose score is at least ``threshold``."""
        return self[self.scores >= threshold]

    def to_xywh_rows(self) -> list[list[float]]:
        """Rows ``[x1, y1, w, h, score]`` in pixels, with ``w = x2 - x1 + 1`` as WIDER FACE and
        FDDB result files write them."""
        rows = []
        for (x1, y1, x2, y2), s in zip(self.boxes.tolist(), self.scores.tolist()):
            rows.append([x1, y1, x2 - x1 + 1, y2 - y1 + 1, s])
        return rows

    def to_json(self) -> list[dict[str, Any]]:
        """A JSON-ready list of ``{"box": [x1, y1, x2, y2], "score": s}``, pixels, with
        ``"landmarks": [[x, y] x 5]`` (in :data:`LANDMARK_NAMES` order) when the detector has them."""
        faces = [
            {"box": [round(v, 2) for v in box], "score": round(score, 4)}
            for box, score in zip(self.boxes.tolist(), self.scores.tolist())
        ]
        if self.landmarks is not None:
            for face, points in zip(faces, self.landmarks.tolist()):
                face["landmarks"] = [[round(x, 2), round(y, 2)] for x, y in points]
        return faces
