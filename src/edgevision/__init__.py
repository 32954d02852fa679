"""edgevision: efficient vision on CPUs and embedded devices.

The public names are imported on first use (PEP 562), so ``import edgevision`` and the
``edgevision`` command's ``--help`` do not pay for torch, torchvision or the deployment stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgevision.api import load_detector
    from edgevision.detection.detections import Detections
    from edgevision.detection.detector import Detector
    from edgevision.models import create_model, list_models
    from edgevision.recognition.recognizer import load_recognizer

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {
    "Detections": "edgevision.detection.detections",
    "Detector": "edgevision.detection.detector",
    "create_model": "edgevision.models",
    "list_models": "edgevision.models",
    "load_detector": "edgevision.api",
    "load_recognizer": "edgevision.recognition.recognizer",
}
__all__ = ["Detections", "Detector", "create_model", "list_models", "load_detector", "load_recognizer"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edgevision' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
