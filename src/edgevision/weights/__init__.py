"""Small trained weights shipped inside the package, each with a model card beside it."""

from __future__ import annotations

from pathlib import Path

from edgevision.errors import WeightsError

WEIGHTS_DIR = Path(__file__).parent

# Registered model name -> the bundled weights file that is its default.
BUNDLED = {"faceboxes": "faceboxes_widerface.pth"}


def bundled_weights(name: str) -> Path:
    """The path of the default weights shipped for model ``name``."""
    if name not in BUNDLED:
        raise WeightsError(f"no bundled weights for model {name!r}; pass weights=PATH")
    path = WEIGHTS_DIR / BUNDLED[name]
    if not path.is_file():
        raise WeightsError(f"bundled weights for {name!r} are missing from the installation: {path}")
    return path
