"""Face / non-face patches cut from WIDER FACE: the architecture search's proxy task data.

Faces: a square around each ground-truth box, its side ``context`` times the box's longer side,
centred on the box, resized to ``size x size`` (``cv2.INTER_AREA``). A face is skipped when it is
flagged invalid, heavily occluded (occlusion 2), smaller than ``min_face`` pixels on its longer
side (too few pixels to carry a face at 32x32), or when its square leaves the image (no padding,
so a patch holds only the image's own pixels).

Non-faces: random squares from the same images, of the scale of the kept faces (a face's square
side times a log-uniform factor in [1/2, 2]), so the scale and the blur of resizing are no cue. A
square is kept only when its IoU with every box of the image (all of them, small and invalid
ones included) is below ``max_iou`` and no box at least a quarter of its side has more than
``max_iof`` of its own area inside it. One non-face per face, so the classes are balanced.

Everything is drawn from ``numpy.random.default_rng(seed)`` over the images in annotation order:
the same tree and options give the same patches. A set is cached as an ``.npz``
(:func:`save_face_patches`) and read back with checks (:func:`load_face_patches`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgevision.data.io import read_image, save_npz
from edgevision.data.widerface import WiderFaceRecord, WiderFaceSplit, load_split
from edgevision.errors import ConfigError, DatasetError, InputFileError
from edgevision.validation import check_number

FORMAT_VERSION = 1
HEAVY_OCCLUSION = 2  # WIDER's occlusion attribute: 0 none, 1 partial, 2 heavy
NEGATIVE_TRIES = 50  # random squares tried per wanted non-face before giving up on an image


@dataclass(frozen=True)
class PatchOptions:
    """How patches are cut; stored in the cache so a file says how it was made."""

    size: int = 32  # output side, pixels
    context: float = 1.25  # face square side / the box's longer side
    min_face: int = 16  # skip faces whose longer side is shorter (pixels)
    max_iou: float = 0.3  # a non-face's IoU with every box stays below this
    max_iof: float = 0.5  # ... and no sizeable box has more of its area inside it
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise ConfigError(f"patch size must be an integer >= 8, got {self.size}")
        check_number("context", self.context, 1.0, 4.0)
        if not isinstance(self.min_face, int) or self.min_face < 1:
            raise ConfigError(f"min_face must be a positive integer, got {self.min_face}")
        check_number("max_iou", self.max_iou, 0.0, 1.0, low_open=True)
        check_number("max_iof", self.max_iof, 0.0, 1.0, low_open=True)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed}")


@dataclass(frozen=True, eq=False)
class FacePatches:
    """A patch set.

    Attributes:
        images: ``(N, size, size, 3)`` uint8 RGB.
        labels: ``(N,)`` uint8, 1 = face, 0 = non-face.
        squares: ``(N, 4)`` int32 xyxy pixels (exclusive end) of each patch in its source image.
        sources: ``(N,)`` int32 index into ``names``.
        names: the source images, relative to the split's image folder.
        provenance: split, root, options and format version.
    """

    images: np.ndarray
    labels: np.ndarray
    squares: np.ndarray
    sources: np.ndarray
    names: tuple[str, ...]
    provenance: dict[str, Any]

    def __len__(self) -> int:
        return len(self.labels)


def face_square(box: np.ndarray, context: float) -> tuple[int, int, int, int]:
    """The integer square (x1, y1, x2, y2), x2/y2 exclusive, centred on an xyxy ``box`` with side
    ``context`` times its longer side."""
    side = max(1, round(context * float(max(box[2] - box[0], box[3] - box[1]))))
    x1 = math.floor((box[0] + box[2]) / 2 - side / 2 + 0.5)
    y1 = math.floor((box[1] + box[3]) / 2 - side / 2 + 0.5)
    return x1, y1, x1 + side, y1 + side


def crop_resize(image: np.ndarray, square: tuple[int, int, int, int], size: int) -> np.ndarray:
    """``image[y1:y2, x1:x2]`` resized to ``(size, size)`` with area interpolation."""
    x1, y1, x2, y2 = square
    return cv2.resize(image[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA)


def overlaps(square: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and IoF (intersection over each box's own area) of one xyxy ``square`` with ``(N, 4)``
    xyxy ``boxes``; ``(N,)`` each."""
    iw = np.clip(np.minimum(square[2], boxes[:, 2]) - np.maximum(square[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(square[3], boxes[:, 3]) - np.maximum(square[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    box_area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
    square_area = (square[2] - square[0]) * (square[3] - square[1])
    return inter / (square_area + box_area - inter), inter / box_area


def is_background(square: np.ndarray, boxes: np.ndarray, options: PatchOptions) -> bool:
    """Whether ``square`` overlaps no box of the image beyond the bounds of :class:`PatchOptions`."""
    if len(boxes) == 0:
        return True
    iou, iof = overlaps(square, boxes)
    sizeable = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= (square[2] - square[0]) / 4
    return bool((iou < options.max_iou).all() and (iof[sizeable] <= options.max_iof).all())


def _face_squares(record: WiderFaceRecord, shape: tuple[int, ...], options: PatchOptions) -> list:
    height, width = shape[:2]
    keep = record.valid & (record.attributes[:, 4] < HEAVY_OCCLUSION)
    squares = []
    for box in record.boxes[keep]:
        if max(box[2] - box[0], box[3] - box[1]) < options.min_face:
            continue
        square = face_square(box, options.context)
        if square[0] >= 0 and square[1] >= 0 and square[2] <= width and square[3] <= height:
            squares.append(square)
    return squares


def _background_squares(
    boxes: np.ndarray,
    shape: tuple[int, ...],
    sides: list[int],
    rng: np.random.Generator,
    options: PatchOptions,
) -> list:
    """Up to ``len(sides)`` background squares, one per face side (jittered in scale)."""
    height, width = shape[:2]
    found: list = []
    if min(height, width) < options.min_face:
        return found
    for side in sides:
        for _ in range(NEGATIVE_TRIES):
            s = int(round(side * math.exp(rng.uniform(-math.log(2), math.log(2)))))
            s = max(options.min_face, min(s, height, width))
            x1, y1 = int(rng.integers(0, width - s + 1)), int(rng.integers(0, height - s + 1))
            square = (x1, y1, x1 + s, y1 + s)
            if is_background(np.asarray(square, np.float64), boxes, options):
                found.append(square)
                break
    return found


def build_face_patches(split: WiderFaceSplit, options: PatchOptions | None = None) -> FacePatches:
    """Cut the balanced face / non-face patch set of a WIDER FACE split (module docstring).

    Non-faces come from the image a face came from; where an image yields fewer background
    squares than faces (crowds), the difference is made up from the other images in a second pass,
    and faces are dropped at random only if the whole split still falls short.
    """
    options = options or PatchOptions()
    rng = np.random.default_rng(options.seed)
    faces: list[tuple[int, tuple]] = []
    backgrounds: list[tuple[int, tuple]] = []
    shapes = []
    for index, record in enumerate(split.records):
        image = read_image(split.image_path(record))
        shapes.append(image.shape)
        squares = _face_squares(record, image.shape, options)
        faces += [(index, s) for s in squares]
        sides = [s[2] - s[0] for s in squares]
        backgrounds += [
            (index, s) for s in _background_squares(record.boxes, image.shape, sides, rng, options)
        ]
    all_sides = [s[2] - s[0] for _, s in faces]
    for _ in range(NEGATIVE_TRIES):  # second pass: top up from random images
        missing = len(faces) - len(backgrounds)
        if missing <= 0 or not faces:
            break
        picks = rng.integers(0, len(split.records), missing)
        sides = rng.choice(all_sides, missing)
        for index, side in zip(picks.tolist(), sides.tolist(), strict=True):
            record = split.records[index]
            backgrounds += [
                (index, s) for s in _background_squares(record.boxes, shapes[index], [side], rng, options)
            ]
    count = min(len(faces), len(backgrounds))
    if count == 0:
        raise DatasetError(f"no face of WIDER FACE {split.split} passes the patch filters")
    faces = [faces[i] for i in sorted(rng.permutation(len(faces))[:count])]
    backgrounds = backgrounds[:count]
    return _cut(split, faces + backgrounds, [1] * count + [0] * count, options)


def _cut(split: WiderFaceSplit, items: list, labels: list[int], options: PatchOptions) -> FacePatches:
    """Read each source image once and cut its patches (RGB)."""
    images = np.empty((len(items), options.size, options.size, 3), np.uint8)
    by_source: dict[int, list[int]] = {}
    for i, (index, _) in enumerate(items):
        by_source.setdefault(index, []).append(i)
    for index, rows in by_source.items():
        image = cv2.cvtColor(read_image(split.image_path(split.records[index])), cv2.COLOR_BGR2RGB)
        for i in rows:
            images[i] = crop_resize(image, items[i][1], options.size)
    provenance = {
        "format_version": FORMAT_VERSION,
        "split": split.split,
        "root": str(split.root),
        "options": options.__dict__,
    }
    return FacePatches(
        images=images,
        labels=np.asarray(labels, np.uint8),
        squares=np.asarray([s for _, s in items], np.int32).reshape(-1, 4),
        sources=np.asarray([index for index, _ in items], np.int32),
        names=tuple(r.name for r in split.records),
        provenance=provenance,
    )


def save_face_patches(patches: FacePatches, path: str | Path) -> None:
    """Write ``patches`` as an uncompressed ``.npz`` (atomically: no half-written cache)."""
    save_npz(
        path,
        images=patches.images,
        labels=patches.labels,
        squares=patches.squares,
        sources=patches.sources,
        names=np.asarray(patches.names),
        provenance=np.asarray(json.dumps(patches.provenance)),
    )


def load_face_patches(path: str | Path) -> FacePatches:
    """Read a file written by :func:`save_face_patches`, checking its arrays agree.

    Raises:
        InputFileError: missing, not an ``.npz``, or not a valid patch set (one line, naming why).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"face patch file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise InputFileError(f"{path} is not a face patch .npz file: {error}") from None
    missing = {"images", "labels", "squares", "sources", "names", "provenance"} - set(arrays)
    if missing:
        raise InputFileError(f"{path} is not a face patch file: no {', '.join(sorted(missing))}")
    images, labels = arrays["images"], arrays["labels"]
    n = len(labels)
    problem = None
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[3] != 3
        or images.shape[1] != images.shape[2]
    ):
        problem = f"images must be (N, S, S, 3) uint8, got {images.shape} {images.dtype}"
    elif len(images) != n or arrays["squares"].shape != (n, 4) or arrays["sources"].shape != (n,):
        problem = "images, labels, squares and sources disagree in length"
    elif labels.dtype != np.uint8 or not np.isin(labels, (0, 1)).all():
        problem = "labels must be uint8 0 / 1"
    elif n and not (0 <= arrays["sources"].min() and arrays["sources"].max() < len(arrays["names"])):
        problem = "sources index outside names"
    if problem is None:
        try:
            provenance = json.loads(str(arrays["provenance"]))
        except json.JSONDecodeError:
            provenance = None
        if not isinstance(provenance, dict) or provenance.get("format_version") != FORMAT_VERSION:
            problem = f"provenance is not format version {FORMAT_VERSION}"
    if problem:
        raise InputFileError(f"{path} is not a valid face patch file: {problem}")
    return FacePatches(
        images, labels, arrays["squares"], arrays["sources"], tuple(arrays["names"].tolist()), provenance
    )


def cached_face_patches(
    widerface_root: str | Path, split: str, cache_dir: str | Path, options: PatchOptions | None = None
) -> Path:
    """The cache file of ``split``'s patches under ``cache_dir``, built first when it is missing or
    was made from other options (the file name carries the seed; the provenance the rest)."""
    options = options or PatchOptions()
    path = Path(cache_dir) / f"face_patches_{split}_{options.size}px_seed{options.seed}.npz"
    if path.is_file():
        try:
            if load_face_patches(path).provenance.get("options") == options.__dict__:
                return path
        except InputFileError:
            pass  # a damaged cache is rebuilt
    save_face_patches(build_face_patches(load_split(widerface_root, split), options), path)
    return path
