"""Calibration images: the image files of a folder, checked to decode, and the network input batches
made of them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from edgevision.data.io import IMAGE_SUFFIXES, read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.errors import ConfigError, ImageDecodeError, InputFileError


def image_paths(folder: str | Path, limit: int | None = None) -> list[Path]:
    """The images in ``folder`` (searched recursively, sorted; videos and other files ignored), at
    most ``limit`` of them spread evenly over the list so that every sub-folder contributes.

    Raises:
        InputFileError: ``folder`` is missing, not a folder, or holds no images.
        ConfigError: ``limit`` is not positive.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"not a folder of calibration images: {folder}")
    if limit is not None and limit < 1:
        raise ConfigError(f"need limit >= 1, got {limit}")
    images = sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )
    if not images:
        raise InputFileError(f"no images in folder: {folder}")
    return spread(images, limit)


def spread(paths: Sequence[Path], limit: int | None) -> list[Path]:
    """At most ``limit`` of ``paths``, evenly spaced from the first to the last."""
    if limit is None or limit >= len(paths):
        return list(paths)
    return [paths[int(k)] for k in np.linspace(0, len(paths) - 1, limit).round()]


def readable_image_paths(folder: str | Path, limit: int | None = None) -> list[Path]:
    """:func:`image_paths`, each of which is read: a calibration set that fails on its tenth image
    fails before any work instead.

    A file that does not decode is refused, not skipped: the calibration images decide the
    plan's ranges, and a set that silently lost some would give another plan.

    Raises:
        InputFileError, ConfigError: as :func:`image_paths`; ``ImageDecodeError`` (an
            ``InputFileError``) naming the first image that cannot be read and how many cannot.
    """
    paths = image_paths(folder, limit)
    failures = []
    for path in paths:
        try:
            read_image(path)
        except InputFileError as error:
            failures.append(error)
    if failures:
        raise ImageDecodeError(
            f"{len(failures)} of {len(paths)} calibration images cannot be read, e.g. {failures[0]}"
        )
    return paths


class ImageBatches:
    """Calibration batches of a list of images, re-iterable.

    Each image is resized to ``size`` with ``cv2.INTER_LINEAR`` (aspect ratio not kept, as the
    network sees a fixed input) and turned into the ``(C, H, W)`` float32 input: by
    ``preprocessing`` for 3 channels, as grey levels 0-255 for 1 (what a model that declares no
    preprocessing, an ONNX file, is taken to read). Batches are ``{input_name: (B, C, H, W)}`` with
    ``B = batch_size`` (the last may be smaller, unless ``drop_last``).

    Args:
        paths: the image files.
        input_name: the model's input name.
        size: ``(H, W)`` of the model input.
        preprocessing: channel order, mean and std of the model's input.
        batch_size: images per batch.
        channels: the model input's channels, 3 or 1.
        drop_last: leave out a last batch of fewer than ``batch_size`` images (a model whose batch
            is fixed takes no other).

    Raises:
        ConfigError: ``size`` or ``batch_size`` is not positive, ``channels`` is not 3 or 1 (1 only
            without preprocessing), or ``drop_last`` leaves no batch.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        input_name: str,
        size: tuple[int, int],
        preprocessing: Preprocessing,
        batch_size: int = 1,
        channels: int = 3,
        drop_last: bool = False,
    ) -> None:
        if len(size) != 2 or min(size) < 1 or batch_size < 1:
            raise ConfigError(f"need size (H, W) >= 1 and batch_size >= 1; got {size}, {batch_size}")
        if channels not in (1, 3) or (channels == 1 and preprocessing != Preprocessing()):
            raise ConfigError(
                f"images make 3-channel inputs, or 1-channel grey ones without preprocessing; the "
                f"model takes {channels} channels{' with preprocessing' if channels == 1 else ''}"
            )
        if drop_last:
            if len(paths) < batch_size:
                raise ConfigError(
                    f"the model takes batches of {batch_size} images; {len(paths)} calibration images"
                )
            paths = paths[: len(paths) - len(paths) % batch_size]
        self.paths = list(paths)
        self.input_name = input_name
        self.size = (int(size[0]), int(size[1]))
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.channels = channels

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.paths), self.batch_size):
            chunk = self.paths[start : start + self.batch_size]
            yield {self.input_name: np.stack([self.load(path) for path in chunk])}

    def load(self, path: Path) -> np.ndarray:
        """The network input of one image: ``(C, H, W)`` float32, or ``(H, W, 3)`` uint8 pixels."""
        image = read_image(path)
        if self.channels == 1:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            resized = cv2.resize(grey, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
            return resized.astype(np.float32)[None]
        return self.preprocessing.apply(image, self.size)


class ImageFolderBatches(ImageBatches):
    """:class:`ImageBatches` of the :func:`image_paths` of ``folder`` (at most ``limit``); the
    other arguments are :class:`ImageBatches`'.

    Raises:
        InputFileError: ``folder`` is missing, not a folder, or holds no images.
        ConfigError: as :class:`ImageBatches`, or ``limit`` is not positive.
    """

    def __init__(
        self,
        folder: str | Path,
        input_name: str,
        size: tuple[int, int],
        preprocessing: Preprocessing,
        batch_size: int = 1,
        limit: int | None = None,
        channels: int = 3,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            image_paths(folder, limit), input_name, size, preprocessing, batch_size, channels, drop_last
        )
