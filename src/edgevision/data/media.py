"""Finding the images and videos a command was given, and reading video frames."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from edgevision.data.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from edgevision.errors import InputFileError


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def collect_media(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders into the list of media files to process, in order.

    A folder contributes its images and videos (recursively, sorted). A file is taken as given
    (whatever its suffix; reading it reports a non-image). Raises :class:`InputFileError` for a
    missing path or a folder without media.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputFileError(f"no such file or folder: {path}")
        if path.is_dir():
            media = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
            if not media:
                raise InputFileError(f"no images or videos in folder: {path}")
            found.extend(media)
        else:
            found.append(path)
    return found


class VideoFrames:
    """The frames of a video file as ``(H, W, 3)`` uint8 BGR arrays.

    OpenCV's reader stops at the first frame it cannot decode, as it stops at the end: after
    iterating, :meth:`check_complete` tells the two apart with the container's frame count.
    """

    def __init__(self, path: Path) -> None:
        # FFmpeg would print a line per damaged packet; check_complete reports the damage once.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, unless the user set it
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise InputFileError(f"not a readable video: {path}")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))  # 0: not known
        self.decoded = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = self.capture.read()
                if not ok:
                    return
                self.decoded += 1
                yield frame
        finally:
            self.capture.release()

    def check_complete(self) -> None:
        """After iterating: refuse a video that ended before the container's frame count.

        Raises:
            InputFileError: fewer frames decoded than the container lists (damaged or cut short).
        """
        if self.decoded < self.frame_count:
            raise InputFileError(
                f"damaged or cut-short video: decoded {self.decoded} of its {self.frame_count} frames: "
                f"{self.path}"
            )


class AtomicVideoWriter:
    """Writes frames to a temporary ``.mp4`` beside ``path``; :meth:`commit` renames it into place,
    :meth:`abort` deletes it, so a failed run leaves no half video."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise InputFileError(f"cannot write a video to {path}")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def commit(self) -> None:
        self.writer.release()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


def annotated_output_names(media: Sequence[Path]) -> dict[Path, str]:
    """The file name each input's annotated copy gets in the output folder: ``<stem>.jpg`` for an
    image, ``<stem>.mp4`` for a video. Raises :class:`InputFileError` when two inputs would write
    the same file (e.g. ``a/x.jpg`` and ``b/x.png``), before anything is written."""
    names: dict[Path, str] = {}
    taken: dict[str, Path] = {}
    for path in media:
        name = f"{path.stem}.mp4" if is_video(path) else f"{path.stem}.jpg"
        if name in taken and taken[name] != path:
            raise InputFileError(f"{taken[name]} and {path} would both be written as {name}; rename one")
        taken[name] = path
        names[path] = name
    return names
