"""TEMPORARY stand-ins for three modules of issue 12 not yet on main, with their agreed interfaces
(notes/common12.md); each goes when its module lands, and the imports in
``training/face_embedding.py`` and ``training/embedding_data.py`` switch to:

- ``margin_head`` -> ``edgevision.recognition.arcface.margin_head`` (helper "core");
- ``face_crop_input`` -> ``edgevision.recognition.alignment.face_crop_input`` (lead);
- ``TeacherSet``, ``load_teacher_set`` -> ``edgevision.recognition.teacher_set`` (lead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _MarginHead(nn.Module):
    """Cosine logits ``s * cos(theta)`` of normalised embeddings and class weights, with the
    target class's ``cos(theta)`` replaced by ``target(cos)``."""

    def __init__(self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.s, self.m = s, m

    def target(self, cos: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1, 1)
        target = cos.gather(1, labels[:, None])
        return self.s * cos.scatter(1, labels[:, None], self.target(target))


class _ArcFace(_MarginHead):
    def target(self, cos: torch.Tensor) -> torch.Tensor:
        sin = (1 - cos**2).clamp(min=1e-12).sqrt()
        shifted = cos * math.cos(self.m) - sin * math.sin(self.m)
        # theta + m > pi: the reference's fallback keeps the logit decreasing in theta
        return torch.where(
            cos > math.cos(math.pi - self.m), shifted, cos - math.sin(math.pi - self.m) * self.m
        )


class _CosFace(_MarginHead):
    def __init__(self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.35) -> None:
        super().__init__(in_features, num_classes, s, m)

    def target(self, cos: torch.Tensor) -> torch.Tensor:
        return cos - self.m


class _Softmax(nn.Module):
    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.linear(embeddings)


def margin_head(name: str, in_features: int, num_classes: int, **kw: float) -> nn.Module:
    return {"arcface": _ArcFace, "cosface": _CosFace, "softmax": _Softmax}[name](
        in_features, num_classes, **kw
    )


def face_crop_input(image: np.ndarray, size: int = 112) -> np.ndarray:
    """The longer side scaled to ``size``, the shorter padded (border repeated), centred."""
    height, width = image.shape[:2]
    ratio = size / max(height, width)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    return cv2.copyMakeBorder(
        resized, top, size - new_h - top, left, size - new_w - left, cv2.BORDER_REPLICATE
    )


@dataclass(frozen=True)
class TeacherSet:
    crops: np.ndarray  # (N, 112, 112, 3) uint8 BGR aligned
    embeddings: np.ndarray  # (N, 128) float32, the teacher's of each crop
    embeddings_flipped: np.ndarray  # (N, 128) float32, of each mirrored crop
    sources: np.ndarray  # (N,) where each came from


def load_teacher_set(path: Path) -> TeacherSet:
    with np.load(path, allow_pickle=False) as data:
        return TeacherSet(*(data[key] for key in ("crops", "embeddings", "embeddings_flipped", "sources")))
