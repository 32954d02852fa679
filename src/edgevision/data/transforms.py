"""Composable training transforms on ``Sample`` (image + face boxes), FaceBoxes' augmentation
(FaceBoxes Sec. 4.1; FaceBoxes.PyTorch ``data_augment.py``) among them.

Every transform is a callable ``(sample, rng) -> sample`` taking a ``numpy.random.Generator``, so
a sample's augmentation is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from edgevision.boxes import intersection_over_first


@dataclass(frozen=True, eq=False)
class Sample:
    """An image and its faces.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR.
        boxes: ``(N, 4)`` float32 xyxy pixels.
    """

    image: np.ndarray
    boxes: np.ndarray


Transform = Callable[[Sample, np.random.Generator], Sample]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


@dataclass(frozen=True)
class RandomSquareCrop:
    """Crop a random square of ``min_scale``-1.0 of the short side, keeping the faces whose centre
    lies inside it (clipped to it), and requiring at least one face wholly inside and, after the
    crop is resized to ``output_size``, at least ``min_face_px`` on its short side. Faces smaller
    than that are dropped. With probability ``full_prob`` the square is the full short side. If no
    try succeeds the image is padded to a square with the mean colour instead (FaceBoxes.PyTorch).
    """

    output_size: int
    min_scale: float = 0.3
    full_prob: float = 0.2
    min_face_px: float = 16.0
    tries: int = 250
    pad_value: tuple[int, int, int] = (104, 117, 123)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        short = min(height, width)
        boxes = torch.from_numpy(sample.boxes)
        for _ in range(self.tries if len(sample.boxes) else 0):
            scale = 1.0 if rng.uniform() <= self.full_prob else rng.uniform(self.min_scale, 1.0)
            side = int(scale * short)
            left = int(rng.integers(width - side)) if width > side else 0
            top = int(rng.integers(height - side)) if height > side else 0
            roi = np.array([left, top, left + side, top + side], dtype=np.float32)
            if not (intersection_over_first(boxes, torch.from_numpy(roi[None])) >= 1).any():
                continue
            centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
            inside = ((roi[:2] < centres) & (centres < roi[2:])).all(axis=1)
            kept = sample.boxes[inside].copy()
            kept[:, :2] = np.maximum(kept[:, :2], roi[:2]) - roi[:2]
            kept[:, 2:] = np.minimum(kept[:, 2:], roi[2:]) - roi[:2]
            short_sides = (kept[:, 2:] - kept[:, :2]).min(axis=1) * self.output_size / side
            kept = kept[short_sides > self.min_face_px]
            if len(kept) == 0:
                continue
            return Sample(sample.image[top : top + side, left : left + side], kept)
        return pad_to_square(sample, self.pad_value)


def pad_to_square(sample: Sample, value: tuple[int, int, int]) -> Sample:
    """Pad the bottom/right of the image to a square filled with ``value``; boxes stay put."""
    height, width = sample.image.shape[:2]
    side = max(height, width)
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = value
    canvas[:height, :width] = sample.image
    return Sample(canvas, sample.boxes)


@dataclass(frozen=True)
class ColorJitter:
    """Photometric distortion, each with probability 0.5: brightness (±``brightness``), contrast
    (x[1 - c, 1 + c]), saturation (x[1 - s, 1 + s]) and hue (±``hue`` OpenCV units of 180)."""

    brightness: float = 32.0
    contrast: float = 0.5
    saturation: float = 0.5
    hue: int = 18

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image = sample.image.astype(np.float32)
        if rng.uniform() < 0.5:
            image += rng.uniform(-self.brightness, self.brightness)
        if rng.uniform() < 0.5:
            image *= rng.uniform(1 - self.contrast, 1 + self.contrast)
        image = np.clip(image, 0, 255).astype(np.uint8)
        jitter_saturation, jitter_hue = rng.uniform() < 0.5, rng.uniform() < 0.5
        if jitter_saturation or jitter_hue:
            hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int32)
            if jitter_saturation:
                factor = rng.uniform(1 - self.saturation, 1 + self.saturation)
                hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
            if jitter_hue:
                hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-self.hue, self.hue + 1))) % 180
            image = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
        return Sample(image, sample.boxes)


@dataclass(frozen=True)
class RandomMirror:
    """Flip left-right with probability ``p``."""

    p: float = 0.5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.uniform() >= self.p:
            return sample
        width = sample.image.shape[1]
        boxes = sample.boxes.copy()
        boxes[:, [0, 2]] = width - sample.boxes[:, [2, 0]]
        return Sample(np.ascontiguousarray(sample.image[:, ::-1]), boxes)


_INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


@dataclass(frozen=True)
class Resize:
    """Resize to ``size x size`` pixels, with a random interpolation when ``random_interpolation``."""

    size: int
    random_interpolation: bool = True

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        method = (
            _INTERPOLATIONS[int(rng.integers(len(_INTERPOLATIONS)))]
            if self.random_interpolation
            else cv2.INTER_LINEAR
        )
        image = cv2.resize(sample.image, (self.size, self.size), interpolation=method)
        scale = np.array([self.size / width, self.size / height] * 2, dtype=np.float32)
        return Sample(image, (sample.boxes * scale).astype(np.float32))


def faceboxes_train_transform(size: int, mean_bgr: Sequence[float]) -> Compose:
    """FaceBoxes' training augmentation for ``size x size`` inputs (1024 in the paper); images that
    cannot be cropped are padded with ``mean_bgr``, the network's input mean."""
    pad = tuple(round(v) for v in mean_bgr)
    return Compose([RandomSquareCrop(size, pad_value=pad), ColorJitter(), RandomMirror(), Resize(size)])
