"""Shared fixtures. Real data lives outside the project (``EDGEVISION_DATA``, default
``<repo>/../shared/data``); tests that need it skip, saying why, when it is absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import edgevision
from edgevision.data.paths import default_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data root, or a skip naming the path that was looked for."""
    root = default_data_dir(REPO_ROOT)
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set EDGEVISION_DATA to its folder)")
    return root


@pytest.fixture(scope="session")
def shared_weights(data_dir: Path) -> Callable[[str], Path]:
    """``shared_weights("<folder>/<file>")`` is ``data_dir/weights/<folder>/<file>``, or a skip
    naming the missing file."""

    def find(relative: str) -> Path:
        path = data_dir / "weights" / relative
        if not path.is_file():
            pytest.skip(f"pretrained weights not found at {path}")
        return path

    return find


@pytest.fixture(scope="session")
def reference_weights(shared_weights: Callable[[str], Path]) -> Path:
    """The FaceBoxes.PyTorch reference checkpoint (a peer and teacher, not shipped)."""
    return shared_weights("faceboxes_reference/FaceBoxesProd.pth")


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    """The sample photo shipped in the package (one face), so tests need no shared data for it."""
    return Path(edgevision.__file__).parent / "assets" / "astronaut.png"


@pytest.fixture(scope="session")
def header_only_png(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int, int], Path]:
    """``header_only_png(width, height)``: a small PNG file whose header claims ``width x height``
    RGB pixels over 10 bytes of pixel data: it costs nothing to make and fails if it is decoded,
    so a reader that refuses it on its size did so from the header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def make(width: int, height: int) -> Path:
        path = tmp_path_factory.mktemp("png") / f"header_{width}x{height}.png"
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
        body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(10))) + chunk(b"IEND", b"")
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
        return path

    return make


@pytest.fixture(scope="session")
def make_video(astronaut_path: Path) -> Callable[..., Path]:
    """``make_video(path, frames, size=(160, 128), damaged=False)``: an mp4v video of the astronaut
    photo at ``size`` (W, H), moving 4 px right a frame, so each frame holds one face. ``damaged``
    zeroes 2,000 bytes in the middle of the file: OpenCV's decoder stops there, while the
    container still lists every frame."""
    import cv2
    import numpy as np

    def make(path: Path, frames: int, size: tuple[int, int] = (160, 128), damaged: bool = False) -> Path:
        photo = cv2.resize(cv2.imread(str(astronaut_path)), size)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
        for index in range(frames):
            writer.write(np.roll(photo, 4 * index, axis=1))
        writer.release()
        if damaged:
            data = bytearray(path.read_bytes())
            middle = len(data) // 2
            data[middle : middle + 2000] = bytes(len(data[middle : middle + 2000]))
            path.write_bytes(bytes(data))
        return path

    return make
