"""The MakeHuman body, loaded once per session (float64, so tolerances test the maths, not the
rounding); tests that need it skip when the shared data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgevision.recon3d.body import BodyModel


@pytest.fixture(scope="session")
def body_dir(data_dir: Path) -> Path:
    folder = data_dir / "body_model"
    if not (folder / "base.obj").is_file():
        pytest.skip(f"MakeHuman body not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def full_body(body_dir: Path) -> BodyModel:
    return BodyModel.load(body_dir, dtype=torch.float64)


@pytest.fixture(scope="session")
def small_body(full_body: BodyModel) -> BodyModel:
    """The decimated body (about 2,700 vertices)."""
    return full_body.decimated()
