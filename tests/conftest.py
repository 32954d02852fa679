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
