"""Checked image reading, output-path checks and atomic writing."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgevision.errors import ConfigError, DatasetError, ImageDecodeError, InputFileError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})

# The pixel cap of every image read (width x height, from the header, before decoding). 50 MP
# takes the largest common camera photos (48-50 MP phones, 45 MP full frame) and bounds the memory
# of a run: detection at scale 1 peaks at about 41 bytes a pixel over a 0.9 GB base (8000x6000
# PNG: 2.9 GB peak RSS, `/usr/bin/time -v edgevision detect`), so about 3 GB at the cap, where a
# crafted 16000x16000 PNG took 12 GB for nothing.
DEFAULT_MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "EDGEVISION_MAX_PIXELS"


def max_pixels_limit(max_pixels: int | None = None, name: str = "max_pixels") -> int:
    """The pixel cap in force: ``max_pixels`` when given, else the ``EDGEVISION_MAX_PIXELS``
    environment variable, else :data:`DEFAULT_MAX_PIXELS`. ``name`` names the argument in messages.

    It may be raised up to Pillow's decompression-bomb bound (2 x ``PIL.Image.MAX_IMAGE_PIXELS``,
    178,956,970 by default), past which Pillow's header reader refuses the file itself.

    Raises:
        ConfigError: the value is not a positive integer within that bound.
    """
    from PIL import Image

    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV)
        if text is None:
            return DEFAULT_MAX_PIXELS
        name = MAX_PIXELS_ENV
        try:
            max_pixels = int(text.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{MAX_PIXELS_ENV} must be a whole number of pixels, got {text!r}") from None
    ceiling = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigError(f"{name} must be a positive whole number of pixels, got {max_pixels!r}")
    if ceiling is not None and max_pixels > ceiling:
        raise ConfigError(
            f"{name} can be at most {ceiling:,} pixels (Pillow's decompression-bomb bound), "
            f"got {max_pixels:,}"
        )
    return max_pixels


def check_pixel_count(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """Refuse an image of ``width`` x ``height`` over the pixel cap (see :func:`max_pixels_limit`).

    Raises:
        ImageDecodeError: over the cap; the message names ``what`` and how to raise the cap.
    """
    if width * height > max_pixels_limit(max_pixels):
        raise _size_error(f"{what} is {width}x{height} = {width * height:,} pixels", max_pixels)


def _size_error(size: str, max_pixels: int | None) -> ImageDecodeError:
    return ImageDecodeError(
        f"{size}, over the limit of {max_pixels_limit(max_pixels):,} "
        f"(raise it with --max-pixels or {MAX_PIXELS_ENV})"
    )


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"no such file: {path}")
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise InputFileError(f"expected a file, got {what}: {path}")
    return path


def _checked_size(source: Any, path: Path, max_pixels: int | None) -> tuple[int, int]:
    """``(width, height)`` from an image's header (Pillow reads no pixel data), within the cap."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap decides
            with Image.open(source) as image:
                width, height = image.size
    except Image.DecompressionBombError:  # past the most the cap may be: see max_pixels_limit
        bound = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise _size_error(f"image {path} has more than {bound:,} pixels", max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        # Pillow raises SyntaxError for some malformed headers (its plugins' convention)
        raise ImageDecodeError(f"not a readable image: {path}") from None
    check_pixel_count(width, height, max_pixels, f"image {path}")
    return width, height


def read_image_size(path: str | Path, *, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header only, within the pixel cap.

    Raises:
        InputFileError: the path does not exist or is not a file.
        ImageDecodeError: the header is not an image's, or the image is over the cap.
    """
    path = _existing_file(path)
    try:
        with open(path, "rb") as handle:
            return _checked_size(handle, path, max_pixels)
    except OSError as error:  # from open(): the header reader's own errors are ImageDecodeError
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from None


def read_image(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 BGR.

    The size is read from the header first: an image over the pixel cap (``max_pixels``, see
    :func:`max_pixels_limit`; default 50 MP) is refused before any pixel is decoded.

    Raises:
        InputFileError: the path does not exist or is not a file.
        ImageDecodeError: the file is not a decodable image, is truncated, or is over the cap.
    """
    path = _existing_file(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from None
    if not raw:
        raise ImageDecodeError(f"empty file: {path}")
    if _is_truncated_jpeg(raw):
        raise ImageDecodeError(f"truncated JPEG (no end-of-image marker): {path}")
    _checked_size(io.BytesIO(raw), path, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as error:  # OpenCV's own checks, e.g. its decoders' size limits
        raise ImageDecodeError(f"not a readable image: {path} ({error.err})") from None
    if image is None:
        raise ImageDecodeError(f"not a readable image: {path}")
    return image


def _is_truncated_jpeg(raw: bytes) -> bool:
    """A JPEG's last scan must be followed by the end-of-image marker FF D9 (OpenCV silently
    decodes a truncated one, greying the missing part). Data after the marker (camera trailers,
    motion-photo videos) is allowed."""
    if len(raw) < 4 or not raw.startswith(b"\xff\xd8"):
        return False
    last_scan = raw.rfind(b"\xff\xda")
    return last_scan < 0 or raw.find(b"\xff\xd9", last_scan) < 0


def _os_reason(error: OSError) -> str:
    """``"permission denied: /some/folder"`` from an OSError, for a one-line message."""
    reason = (error.strerror or str(error)).lower()
    return f"{reason}: {error.filename}" if error.filename else reason


def _nearest_existing(path: Path) -> Path:
    return next((p for p in (path, *path.parents) if p.exists()), Path("."))


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check, before any work, that ``path`` can become an output folder: it is a folder or does
    not exist yet, and it or its nearest existing parent is a folder this process may write into.
    Nothing is created. ``what`` names the path in the message (e.g. ``"--out"``).

    Raises:
        InputFileError: ``path`` or a parent is a file, or the folder is not writable.
    """
    path = Path(path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise InputFileError(f"{what} {path} {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputFileError(f"{what} {path}: cannot write into {existing} (permission denied)")
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Check, before any work, that the file ``path`` can be written (atomically, beside itself):
    it is not a folder, and its folder passes :func:`check_output_dir`.

    Raises:
        InputFileError: ``path`` is a folder, or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"{what} {path} is a folder; give a file name")
    check_output_dir(path.parent, f"{what} {path}: the folder")
    return path


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on success rename it onto ``path``, else delete it.

    Raises:
        InputFileError: ``path`` is a folder, or its folder cannot be made or written.
    """
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise InputFileError(f"cannot write {path}: {_os_reason(error)}") from None
    os.close(fd)
    try:
        with open(tmp, mode) as handle:  # a real path in handle.name, for libraries that need one
            yield handle
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise InputFileError(f"cannot write {path}: {_os_reason(error)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path: str | Path, **arrays: Any) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` at ``path``, atomically (:func:`atomic_write`):
    an interrupted write leaves no half-written file."""
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def atomic_write_files(files: Mapping[str | Path, bytes]) -> None:
    """Write several files as one: each to a temporary file beside it, then all renamed into
    place; if anything fails, the temporaries and the files already renamed are deleted, so the
    set appears whole or not at all (e.g. an OBJ, its material and its texture). The renames are
    not one atomic step: a crash between two leaves the first ones; a failure that raises does not.

    Raises:
        InputFileError: a path is a folder, or a folder cannot be made or written.
    """
    paths = [Path(path) for path in files]
    for path in paths:
        if path.is_dir():
            raise InputFileError(f"cannot write {path}: it is a folder")
    temporaries: list[Path] = []
    renamed: list[Path] = []
    current = Path(".")  # the file being written or renamed, for the message
    try:
        for current, data in zip(paths, files.values(), strict=True):
            current.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=current.parent, prefix=f".{current.name}.", suffix=".tmp")
            temporaries.append(Path(tmp))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
        for tmp, current in zip(temporaries, paths, strict=True):
            os.replace(tmp, current)
            renamed.append(current)
    except BaseException as error:
        for leftover in [*temporaries, *renamed]:
            leftover.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise InputFileError(f"cannot write {current}: {_os_reason(error)}") from None
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` to fill; on success it replaces ``path`` (a folder
    from an earlier run, or nothing), else it is deleted: no reader sees a half-filled folder.

    Raises:
        InputFileError: a file is in the way, or the parent folder cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputFileError(f"cannot write the folder {path}: a file of that name is in the way")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as error:
        raise InputFileError(f"cannot write the folder {path}: {_os_reason(error)}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp makes 0700; give the usual mode
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(new: Path, path: Path) -> None:
    """Rename the folder ``new`` onto ``path``; an old folder there is moved aside first (a rename
    cannot replace a non-empty folder) and deleted after, or put back if the rename fails."""
    old = None
    try:
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old)  # onto the empty folder mkdtemp made: allowed by rename(2)
        try:
            os.replace(new, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
                old = None
            raise
    except OSError as error:
        raise InputFileError(f"cannot write the folder {path}: {_os_reason(error)}") from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


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


def not_utf8_error(path: Path, what: str) -> DatasetError:
    """The one-line error for a text file that is not UTF-8, naming its first undecodable line
    (found by a second, binary pass: only on this error path)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                byte = line[error.start]
                return DatasetError(f"{what} {path} line {number} is not UTF-8 text (byte 0x{byte:02x})")
    return DatasetError(f"{what} {path} is not UTF-8 text")


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
