"""The high-level entry points: ``load_detector``."""

from __future__ import annotations

from pathlib import Path

import torch

from edgevision.detection.detector import Detector
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import UnknownModelError
from edgevision.models import create_model
from edgevision.models.weights import load_weights
from edgevision.weights import bundled_weights

DETECTORS = ("faceboxes",)


def load_detector(
    name: str = "faceboxes",
    *,
    weights: str | Path | None = None,
    postprocess: PostProcess | None = None,
    device: str | torch.device | None = None,
) -> Detector:
    """A ready :class:`Detector`: model ``name`` with ``weights`` (default: the bundled ones).

    ``weights`` may be a state dict or a training checkpoint of ours, or a FaceBoxes.PyTorch
    checkpoint (e.g. its ``FaceBoxesProd.pth``); it is loaded with ``weights_only=True``.
    """
    model = create_model(name)  # raises UnknownModelError for an unknown name
    if name not in DETECTORS:
        raise UnknownModelError(f"{name!r} is not a detector; detectors: {', '.join(DETECTORS)}")
    load_weights(model, weights if weights is not None else bundled_weights(name), name)
    return Detector(model, postprocess, torch.device(device) if device is not None else None)
