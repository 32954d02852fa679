"""Fixtures shared by the engine tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def calibration_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight WIDER train images (never the val images the AP is measured on)."""
    train = data_dir / "widerface/WIDER_train/images"
    if not train.is_dir():
        pytest.skip(f"needs the WIDER train images at {train}")
    folder = tmp_path_factory.mktemp("calibration")
    for path in sorted(train.rglob("*.jpg"))[::150][:8]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(autouse=True)
def _timing_cache_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tuned builds keep their default timing cache in a temporary folder, not the user's cache."""
    monkeypatch.setenv("EDGEVISION_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
