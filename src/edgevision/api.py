"""The high-level entry points: ``load_detector``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgevision.detection.detector import Detector
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import UnknownModelError
from edgevision.models import create_model, list_models
from edgevision.weights import bundled_weights

if TYPE_CHECKING:
    from edgevision.deploy.runtime import Engine

DETECTORS = ("faceboxes",)
PLAN_SUFFIX = ".plan"


def load_detector(
    name: str = "faceboxes",
    *,
    weights: str | Path | None = None,
    postprocess: PostProcess | None = None,
    device: str | torch.device | None = None,
) -> Detector:
    """A ready :class:`Detector`: model ``name`` with ``weights`` (default: the bundled ones), or
    a plan file built by ``edgevision build`` (``name`` ending in ``.plan``), run by the engine.

    ``weights`` may be a state dict or a training checkpoint of ours, or a FaceBoxes.PyTorch
    checkpoint (e.g. its ``FaceBoxesProd.pth``); it is loaded with ``weights_only=True``.
    """
    if str(name).endswith(PLAN_SUFFIX):
        from edgevision.deploy.runtime import load_engine  # onnx and onnxruntime, for plans only

        return detector_from_engine(load_engine(Path(name)), postprocess)
    if name not in DETECTORS:
        known = "; it is a registered model, not a detector" if name in list_models() else ""
        raise UnknownModelError(f"unknown detector {name!r}{known}; detectors: {', '.join(DETECTORS)}")
    model = create_model(name, weights=weights if weights is not None else bundled_weights(name))
    return Detector(model, postprocess, torch.device(device) if device is not None else None)


def detector_from_engine(engine: Engine, postprocess: PostProcess | None = None) -> Detector:
    """A detector around a loaded plan: the engine runs the network; anchors and decoding come
    from the registered detector the plan was built from (its config, not its weights).

    Raises:
        UnknownModelError: the plan was not built from a registered detector.
    """
    from edgevision.deploy.export import OnnxDetectorRuntime

    name = engine.plan.source.get("model")
    if name not in DETECTORS:
        raise UnknownModelError(f"the plan was not built from a detector (its source is {name!r})")
    network = OnnxDetectorRuntime(engine, create_model(name), pixels=engine.preprocessing.pixels)
    return Detector(network, postprocess, torch.device("cpu"))
