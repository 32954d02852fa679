"""The value type every detector returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from edgevision.errors import ShapeError


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections on one image, sorted by descending score.

    Attributes:
        boxes: ``(N, 4)`` xyxy float32 pixels of the original image.
        scores: ``(N,)`` float32 confidences in [0, 1].
    """

    boxes: torch.Tensor
    scores: torch.Tensor

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ShapeError(f"Detections.boxes must be (N, 4), got {tuple(self.boxes.shape)}")
        if self.scores.shape != (self.boxes.shape[0],):
            raise ShapeError(
                f"Detections.scores must be ({self.boxes.shape[0]},), got {tuple(self.scores.shape)}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(torch.zeros((0, 4)), torch.zeros((0,)))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Index with an integer, a slice, a bool mask or an index tensor; boxes stay 2-D."""
        return Detections(self.boxes[index].reshape(-1, 4), self.scores[index].reshape(-1))

    def to(self, device: torch.device | str) -> Detections:
        return Detections(self.boxes.to(device), self.scores.to(device))

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
        """A JSON-ready list of ``{"box": [x1, y1, x2, y2], "score": s}``, pixels."""
        return [
            {"box": [round(v, 2) for v in box], "score": round(score, 4)}
            for box, score in zip(self.boxes.tolist(), self.scores.tolist())
        ]
