"""Composable training transforms on ``Sample`` (image + face boxes, and optionally each face's
five landmarks, which move with its box): FaceBoxes' augmentation
(FaceBoxes Sec. 4.1; FaceBoxes.PyTorch ``data_augment.py``), and augmentation that makes faces
smaller (SSD's zoom-out, scale jitter, 2x2 mosaics) for detectors of small faces.

Every transform is a callable ``(sample, rng) -> sample`` taking a ``numpy.random.Generator``, so
a sample's augmentation is reproducible from its seed. The geometric ones are a pure function of
their drawn parameters (``zoom_out``, ``resize_sample``, ``mosaic``) plus a class that draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from edgevision.boxes import MIRRORED_LANDMARKS, NUM_LANDMARKS, intersection_over_first
from edgevision.errors import ConfigError
from edgevision.validation import check_number


@dataclass(frozen=True, eq=False)
class Sample:
    """An image and its faces.

    Attributes:
        image: ``(H, W, 3)`` uint8 BGR.
        boxes: ``(N, 4)`` float32 xyxy pixels.
        landmarks: ``(N, 5, 2)`` float32 ``(x, y)`` pixels of each face's five points (the order
            of :data:`edgevision.boxes.LANDMARK_NAMES`), NaN for a face without
            them; or ``None`` (no face has any).
    """

    image: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray | None = None

    def select(self, keep: np.ndarray) -> Sample:
        """The faces ``keep`` (a bool mask or indices) picks, with their landmarks."""
        landmarks = None if self.landmarks is None else self.landmarks[keep].reshape(-1, NUM_LANDMARKS, 2)
        return Sample(self.image, self.boxes[keep].reshape(-1, 4), landmarks)

    def moved(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        scale: tuple[float, float] = (1.0, 1.0),
        offset: tuple[float, float] = (0.0, 0.0),
    ) -> Sample:
        """The new ``image`` with its ``boxes`` (already moved by the caller, who may clip them),
        and the landmarks moved by the same map: ``p * scale + offset`` per axis."""
        landmarks = self.landmarks
        if landmarks is not None:
            # In float64, as resize_sample scales the boxes.
            landmarks = (landmarks * np.array(scale) + np.array(offset)).astype(np.float32)
        return Sample(image, boxes, landmarks)


Transform = Callable[[Sample, np.random.Generator], Sample]
SampleSource = Callable[[np.random.Generator], Sample]
"""Draws another (un-augmented) training sample with the caller's generator, so a mosaic stays
reproducible from the seed of the sample it is built around."""


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
            inside = sample.select(((roi[:2] < centres) & (centres < roi[2:])).all(axis=1))
            cropped = inside.moved(
                sample.image[top : top + side, left : left + side],
                clip_boxes(inside.boxes, roi) - np.tile(roi[:2], 2),
                offset=(-left, -top),
            )
            cropped = cropped.select(large_faces(cropped.boxes, self.min_face_px, self.output_size / side))
            if len(cropped.boxes) == 0:
                continue
            return cropped
        return pad_to_square(sample, self.pad_value)


def clip_boxes(boxes: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes clipped to the ``(4,)`` xyxy ``region`` (same pixels, not shifted)."""
    return np.clip(boxes, region[[0, 1, 0, 1]], region[[2, 3, 2, 3]])


def large_faces(boxes: np.ndarray, min_face_px: float, scale: float = 1.0) -> np.ndarray:
    """``(N,)`` bool: which ``(N, 4)`` xyxy boxes have a short side, times ``scale`` (to the
    network input's pixels), over ``min_face_px``: a face far smaller than the smallest anchor
    overlaps none well enough to be matched, and kept as a target it would be forced onto one far
    too large."""
    return (boxes[:, 2:] - boxes[:, :2]).min(axis=1) * scale > min_face_px


def drop_small_faces(boxes: np.ndarray, min_face_px: float, scale: float = 1.0) -> np.ndarray:
    """The ``(N, 4)`` xyxy boxes :func:`large_faces` keeps."""
    return boxes[large_faces(boxes, min_face_px, scale)]


@dataclass(frozen=True)
class DropSmallFaces:
    """Drop the faces whose short side is not over ``min_face_px`` in the current image's pixels
    (:func:`drop_small_faces`): the last step of a composition, after every change of size."""

    min_face_px: float

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return sample.select(large_faces(sample.boxes, self.min_face_px))


def pad_to_square(sample: Sample, value: tuple[int, int, int]) -> Sample:
    """Pad the bottom/right of the image to a square filled with ``value``; boxes stay put."""
    height, width = sample.image.shape[:2]
    side = max(height, width)
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = value
    canvas[:height, :width] = sample.image
    return sample.moved(canvas, sample.boxes)


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
        return sample.moved(image, sample.boxes)


@dataclass(frozen=True)
class RandomMirror:
    """Flip left-right with probability ``p`` (:func:`mirror`)."""

    p: float = 0.5

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.uniform() >= self.p:
            return sample
        return mirror(sample)


def mirror(sample: Sample) -> Sample:
    """The sample flipped left-right: ``x -> W - x`` for box edges and points; the landmarks on
    the image's left and right (eyes, mouth corners) trade places, so that the order stays the
    image's left, then right."""
    width = sample.image.shape[1]
    boxes = sample.boxes.copy()
    boxes[:, [0, 2]] = width - sample.boxes[:, [2, 0]]
    flipped = sample.moved(np.ascontiguousarray(sample.image[:, ::-1]), boxes, (-1.0, 1.0), (width, 0.0))
    if flipped.landmarks is None:
        return flipped
    return Sample(flipped.image, flipped.boxes, flipped.landmarks[:, list(MIRRORED_LANDMARKS)])


_INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


def resize_sample(sample: Sample, width: int, height: int, interpolation: int = cv2.INTER_LINEAR) -> Sample:
    """The image resized to ``width x height`` pixels, its boxes scaled by the same per-axis ratios."""
    old_height, old_width = sample.image.shape[:2]
    image = cv2.resize(sample.image, (width, height), interpolation=interpolation)
    # In float64: a float32 ratio can put a box edge at the border one ulp outside the image.
    ratios = (width / old_width, height / old_height)
    return sample.moved(image, (sample.boxes * np.array(ratios * 2)).astype(np.float32), ratios)


@dataclass(frozen=True)
class Resize:
    """Resize to ``size x size`` pixels, with a random interpolation when ``random_interpolation``."""

    size: int
    random_interpolation: bool = True

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        method = (
            _INTERPOLATIONS[int(rng.integers(len(_INTERPOLATIONS)))]
            if self.random_interpolation
            else cv2.INTER_LINEAR
        )
        return resize_sample(sample, self.size, self.size, method)


def rescale(sample: Sample, factor: float) -> Sample:
    """The image resized by ``factor`` (sides rounded, at least 1 px), with area averaging when
    shrinking (no aliasing) and bilinear when enlarging."""
    height, width = sample.image.shape[:2]
    new_width, new_height = max(1, int(width * factor + 0.5)), max(1, int(height * factor + 0.5))
    if (new_width, new_height) == (width, height):
        return sample
    return resize_sample(sample, new_width, new_height, cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def zoom_out(
    sample: Sample, canvas_size: tuple[int, int], offset: tuple[int, int], fill: tuple[int, int, int]
) -> Sample:
    """The image pasted onto a ``canvas_size = (width, height)`` canvas of colour ``fill`` with its
    top-left corner at ``offset = (left, top)`` pixels; boxes shifted by the offset."""
    height, width = sample.image.shape[:2]
    (canvas_width, canvas_height), (left, top) = canvas_size, offset
    # A negative offset would not fail below: numpy would slice from the far edge.
    if not (0 <= left <= canvas_width - width and 0 <= top <= canvas_height - height):
        raise ConfigError(
            f"a {width}x{height} image at {offset} does not fit a {canvas_width}x{canvas_height} canvas"
        )
    canvas = cv2.copyMakeBorder(
        sample.image,
        top,
        canvas_height - height - top,
        left,
        canvas_width - width - left,
        cv2.BORDER_CONSTANT,
        value=fill,
    )
    return sample.moved(
        canvas, sample.boxes + np.array([left, top, left, top], dtype=np.float32), offset=(left, top)
    )


@dataclass(frozen=True)
class ZoomOut:
    """With probability ``p``, put the image at a random place on a canvas ``ratio`` times its
    width and height (``ratio`` uniform in ``[1, max_ratio]``) filled with ``fill`` (the network's
    mean, which reads as zero to it): every face becomes up to ``max_ratio`` times smaller
    relative to the picture (SSD, Liu et al. 2016, Sec. 3.6 "zoom out": p = 0.5, ratio up to 4).
    Where the canvas would pass ``max_pixels``, the image is first shrunk to fit it: a 4x canvas
    of a 1024x768 picture is 12.6 M pixels, most of them fill, and what follows shrinks it anyway.
    """

    fill: tuple[int, int, int]
    max_ratio: float = 4.0
    p: float = 0.5
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        check_number("ZoomOut max_ratio", self.max_ratio, 1.0, 64.0)
        check_number("ZoomOut p", self.p, 0.0, 1.0)
        if self.max_pixels is not None:
            check_number("ZoomOut max_pixels", self.max_pixels, 1, 2**40)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.uniform() >= self.p:
            return sample
        ratio = rng.uniform(1.0, self.max_ratio)
        height, width = sample.image.shape[:2]
        if self.max_pixels is not None and height * width * ratio**2 > self.max_pixels:
            sample = rescale(sample, (self.max_pixels / (height * width * ratio**2)) ** 0.5)
            height, width = sample.image.shape[:2]
        canvas_width, canvas_height = int(width * ratio), int(height * ratio)
        left = int(rng.integers(canvas_width - width + 1))
        top = int(rng.integers(canvas_height - height + 1))
        return zoom_out(sample, (canvas_width, canvas_height), (left, top), self.fill)


@dataclass(frozen=True)
class ScaleJitter:
    """Resize the image by a factor drawn log-uniformly in ``[min_scale, max_scale]`` (so halving
    and doubling are equally likely), lowered where needed to keep the output under ``max_pixels``
    pixels; the boxes scale with it."""

    min_scale: float = 0.5
    max_scale: float = 2.0
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        check_number("ScaleJitter min_scale", self.min_scale, 0.0, 64.0, low_open=True)
        check_number("ScaleJitter max_scale", self.max_scale, self.min_scale, 64.0)
        if self.max_pixels is not None:
            check_number("ScaleJitter max_pixels", self.max_pixels, 1, 2**40)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        factor = float(np.exp(rng.uniform(np.log(self.min_scale), np.log(self.max_scale))))
        if self.max_pixels is not None:
            factor = min(factor, (self.max_pixels / (height * width)) ** 0.5)
        return rescale(sample, factor)


def mosaic(
    tiles: Sequence[Sample],
    centre: tuple[int, int],
    cuts: Sequence[tuple[float, float]],
    size: int,
    min_visible: float,
) -> Sample:
    """A ``size x size`` 2x2 mosaic of four samples around ``centre = (x, y)`` pixels.

    Tile ``i`` (top-left, top-right, bottom-left, bottom-right) is resized, keeping its aspect, to
    the smallest size that covers its cell, and the part of it that overflows is cut:
    ``cuts[i] = (fx, fy)`` in [0, 1] places the cell's window in the resized tile (0: its left /
    top edge, 1: its right / bottom edge). A face cut by the cell's edges is clipped to them, and
    dropped when under ``min_visible`` of its area remains.
    """
    cx, cy = centre
    cells = [(0, 0, cx, cy), (cx, 0, size, cy), (0, cy, cx, size), (cx, cy, size, size)]
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    faces = []
    for tile, (fx, fy), (x0, y0, x1, y1) in zip(tiles, cuts, cells, strict=True):
        height, width = tile.image.shape[:2]
        cell_width, cell_height = x1 - x0, y1 - y0
        # Rounded to the nearest pixel, the covering size is never under the cell's.
        resized = rescale(tile, max(cell_width / width, cell_height / height))
        left = int(fx * (resized.image.shape[1] - cell_width) + 0.5)
        top = int(fy * (resized.image.shape[0] - cell_height) + 0.5)
        canvas[y0:y1, x0:x1] = resized.image[top : top + cell_height, left : left + cell_width]
        shifted = resized.boxes + np.array([x0 - left, y0 - top] * 2, dtype=np.float32)
        cell = np.array([x0, y0, x1, y1], dtype=np.float32)
        visible = intersection_over_first(torch.from_numpy(shifted), torch.from_numpy(cell[None]))[:, 0]
        moved = resized.moved(canvas, clip_boxes(shifted, cell), offset=(x0 - left, y0 - top))
        faces.append(moved.select(visible.numpy() >= min_visible))
    return Sample(
        canvas,
        np.concatenate([f.boxes for f in faces]).astype(np.float32).reshape(-1, 4),
        _joined_landmarks(faces),
    )


def _joined_landmarks(samples: Sequence[Sample]) -> np.ndarray | None:
    """The samples' landmarks in one ``(N, 5, 2)`` array, NaN for the faces of a sample without
    any; ``None`` when none has landmarks."""
    if all(s.landmarks is None for s in samples):
        return None
    parts = [
        s.landmarks
        if s.landmarks is not None
        else np.full((len(s.boxes), NUM_LANDMARKS, 2), np.nan, np.float32)
        for s in samples
    ]
    return np.concatenate(parts).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Mosaic:
    """With probability ``p``, a ``size x size`` 2x2 mosaic (YOLOv4, Bochkovskiy et al. 2020) of
    the sample and three others from ``draw``, in a random order, around a centre drawn uniformly
    in ``centre_range`` of the side on each axis, each tile cut at a uniform place (see
    :func:`mosaic`). Each picture gets about a quarter of the canvas, so its faces come out about
    half as tall as alone, among the contexts of other pictures. ``draw`` is the data set's: the
    transform itself knows nothing of where samples come from.
    """

    size: int
    draw: SampleSource
    p: float = 0.5
    centre_range: tuple[float, float] = (0.25, 0.75)
    min_visible: float = 0.5

    def __post_init__(self) -> None:
        check_number("Mosaic size", self.size, 2, 2**16)
        check_number("Mosaic p", self.p, 0.0, 1.0)
        low = check_number("Mosaic centre_range low", self.centre_range[0], 0.0, 1.0, low_open=True)
        check_number("Mosaic centre_range high", self.centre_range[1], low, 1.0, high_open=True)
        check_number("Mosaic min_visible", self.min_visible, 0.0, 1.0, low_open=True)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.uniform() >= self.p:
            return sample
        others = [self.draw(rng) for _ in range(3)]
        tiles = [([sample] + others)[i] for i in rng.permutation(4)]
        # At least one pixel on each side of the centre: no cell is empty.
        cx, cy = (
            min(max(int(rng.uniform(*self.centre_range) * self.size), 1), self.size - 1) for _ in range(2)
        )
        cuts = [(rng.uniform(), rng.uniform()) for _ in range(4)]
        return mosaic(tiles, (cx, cy), cuts, self.size, self.min_visible)


def faceboxes_train_transform(size: int, mean_bgr: Sequence[float]) -> Compose:
    """FaceBoxes' training augmentation for ``size x size`` inputs (1024 in the paper); images that
    cannot be cropped are padded with ``mean_bgr``, the network's input mean."""
    pad = tuple(round(v) for v in mean_bgr)
    return Compose([RandomSquareCrop(size, pad_value=pad), ColorJitter(), RandomMirror(), Resize(size)])


def small_face_train_transform(
    size: int, mean_bgr: Sequence[float], draw: SampleSource | None = None, *, min_face_px: float = 16.0
) -> Compose:
    """FaceBoxes' augmentation for ``size x size`` inputs, after steps that make faces smaller.

    FaceBoxes' crop only enlarges faces (1x-3.3x): on the WIDER train boxes (1,000 draws at
    ``size`` 1024) its output faces have a median height of 102 px and 8.4% are under 32 px, where
    the pictures themselves, as a 1x test scale sees them, have 52 px and 24% (of the faces over
    16 px). The steps below bring the training sizes back to the pictures' own: 51 px and 28%
    without ``draw``, 54 px and 24% with it. Fills and padding use ``mean_bgr``, the network's
    input mean.

    1. ``Mosaic`` (only with ``draw``, the data set's source of other samples), p = 0.5: four
       pictures in one ``size`` canvas, each face about half as tall.
    2. ``ScaleJitter`` 0.5x-2x, log-uniform, at most ``(2 size)^2`` pixels. The crop below is
       relative to the image, so this changes no face's size at the output; it changes the detail
       faces are seen at (a halved picture enlarged again is as blurred as the small faces a
       pyramid's 2x level shows the network).
    3. ``ZoomOut``, canvas up to 4x (SSD's range), at most ``(2 size)^2`` pixels, with p = 0.5
       beside mosaics (SSD's p) and p = 1 alone: it then does the shrinking mosaics would share
       (ratios near 1 keep some pictures at their own scale).
    4. FaceBoxes' ``RandomSquareCrop``, ``Resize``, ``ColorJitter``, ``RandomMirror`` (the last
       two after ``Resize``, not before as in :func:`faceboxes_train_transform`: they do not
       depend on the geometry, and on a crop of a zoomed canvas they cost up to 4x more).
    5. ``DropSmallFaces``: the faces under ``min_face_px`` at the output (16: FaceBoxes' crop rule,
       half its smallest anchor) are dropped, also those the crop's fallback keeps (when no crop
       fits, it pads the whole zoomed picture).
    """
    fill = tuple(round(v) for v in mean_bgr)
    budget = 4 * size * size
    steps: list[Transform] = [Mosaic(size, draw, p=0.5)] if draw is not None else []
    steps += [
        ScaleJitter(0.5, 2.0, max_pixels=budget),
        ZoomOut(fill, max_ratio=4.0, p=0.5 if draw is not None else 1.0, max_pixels=budget),
        RandomSquareCrop(size, min_face_px=min_face_px, pad_value=fill),
        Resize(size),
        ColorJitter(),
        RandomMirror(),
        DropSmallFaces(min_face_px),
    ]
    return Compose(steps)
