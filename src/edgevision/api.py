"""The high-level entry points: ``load_detector``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgevision.detection.detector import Detector
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import UnknownModelError
from edgevision.models import create_model, default_model, list_models, model_info

if TYPE_CHECKING:
    from edgevision.deploy.runtime import Engine

PLAN_SUFFIX = ".plan"
DETECTION = "detection"


def load_detector(
    name: str | None = None,
    *,
    weights: str | Path | None = None,
    postprocess: PostProcess | None = None,
    device: str | torch.device | None = None,
) -> Detector:
    """A ready :class:`Detector`: the registered detector ``name`` (default: the best one we ship)
    with ``weights`` (default: its bundled ones), or a plan file built by ``edgevision build``
    (``name`` ending in ``.plan``), run by the engine.

    ``weights`` may be a state dict or a training checkpoint of ours, or a FaceBoxes.PyTorch
    checkpoint (e.g. its ``FaceBoxesProd.pth``); it is loaded with ``weights_only=True``.

    Raises:
        UnknownModelError: ``name`` is not a registered detector.
        WeightsError: the weights are unreadable or do not fit.
    """
    name = default_model(DETECTION) if name is None else name
    if str(name).endswith(PLAN_SUFFIX):
        from edgevision.deploy.runtime import load_engine  # onnx and onnxruntime, for plans only

        return detector_from_engine(load_engine(Path(name)), postprocess)
    check_detector(name)
    model = create_model(name, weights=weights if weights is not None else model_info(name).weights_path)
    return Detector(model, postprocess, torch.device(device) if device is not None else None)


def check_detector(name: str) -> None:
    """Raise :class:`UnknownModelError` unless ``name`` is a registered detector."""
    detectors = list_models(DETECTION)
    if name not in detectors:
        known = "; it is a registered model, not a detector" if name in list_models() else ""
        raise UnknownModelError(f"unknown detector {name!r}{known}; detectors: {', '.join(detectors)}")


def is_detector_plan(engine: Engine) -> bool:
    """Whether the plan was built from a registered detector."""
    return engine.plan.source.get("model") in list_models(DETECTION)


def detector_from_engine(engine: Engine, postprocess: PostProcess | None = None) -> Detector:
    """A detector around a loaded plan: the engine runs the network; decoding comes from the
    registered detector the plan was built from (its config, not its weights).

    Raises:
        UnknownModelError: the plan was not built from a registered detector.
        InputFileError: the plan's network does not have that detector's outputs.
    """
    from edgevision.deploy.export import OnnxNetwork

    name = engine.plan.source.get("model")
    if not is_detector_plan(engine):
        raise UnknownModelError(f"{engine.name} was not built from a detector (its source is {name!r})")
    model = create_model(name)
    network = OnnxNetwork(engine, model)
    return Detector(
        model, postprocess, torch.device("cpu"), network=network, preprocessing=engine.preprocessing
    )
