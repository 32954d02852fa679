"""Checked image reading and atomic writing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgevision.errors import DatasetError, ImageDecodeError, InputFileError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 BGR.

    Raises:
        InputFileError: the path does not exist or is not a file.
        ImageDecodeError: the file is not a decodable image, or is truncated.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"no such file: {path}")
    if not path.is_file():
        raise InputFileError(f"not a file: {path}")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from None
    if data.size == 0:
        raise ImageDecodeError(f"empty file: {path}")
    if _is_truncated_jpeg(data):
        raise ImageDecodeError(f"truncated JPEG (no end-of-image marker): {path}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError(f"not a readable image: {path}")
    return image


def _is_truncated_jpeg(data: np.ndarray) -> bool:
    """A JPEG's last scan must be followed by the end-of-image marker FF D9 (OpenCV silently
    decodes a truncated one, greying the missing part). Data after the marker (camera trailers,
    motion-photo videos) is allowed."""
    raw = data.tobytes()
    if len(raw) < 4 or not raw.startswith(b"\xff\xd8"):
        return False
    last_scan = raw.rfind(b"\xff\xda")
    return last_scan < 0 or raw.find(b"\xff\xd9", last_scan) < 0


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise InputFileError(f"cannot write into {path.parent}: it is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, mode) as handle:  # a real path in handle.name, for libraries that need one
            yield handle
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file; ``what`` names it in the one-line :class:`DatasetError` (e.g. "COCO
    annotation file") when it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{what} {path} is not JSON: {error}") from None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a ``(H, W, 3)`` uint8 BGR image atomically; the format follows the suffix."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise InputFileError(f"cannot encode an image as {path.suffix!r}: {path}")
    with atomic_write(path) as handle:
        handle.write(encoded.tobytes())
