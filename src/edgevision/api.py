"""The high-level entry points: ``load_detector``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgevision.detection.detector import Detector, torch_device
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import ConfigError, UnknownModelError
from edgevision.models import DETECTION, check_task, create_model, default_model, list_models, model_info

if TYPE_CHECKING:
    from edgevision.deploy.runtime import Engine

PLAN_SUFFIX = ".plan"


def load_detector(
    name: str | None = None,
    *,
    weights: str | Path | None = None,
    postprocess: PostProcess | None = None,
    device: str | torch.device | None = None,
    plan_key: str | Path | None = None,
    scales: Sequence[float] | None = None,
) -> Detector:
    """A ready :class:`Detector`: the registered detector ``name`` (default: the best one we ship)
    with ``weights`` (default: its bundled ones), or a plan file built by ``edgevision build``
    (``name`` ending in ``.plan``), run by the engine; a plan read with a key (the file
    ``plan_key``, else the one ``EDGEVISION_PLAN_KEY`` names) must carry its signature. ``scales``
    is the image pyramid (default: the model's ``test_scales``).

    ``weights`` may be a state dict or a training checkpoint of ours, or a FaceBoxes.PyTorch
    checkpoint (e.g. its ``FaceBoxesProd.pth``); it is loaded with ``weights_only=True``.

    Raises:
        UnknownModelError: ``name`` is not a registered detector.
        WeightsError: the weights are unreadable or do not fit.
        ConfigError: ``weights`` or ``device`` with a plan (it holds its weights and runs on its
            backend), ``plan_key`` without one, or a device that is not there.
    """
    name = default_model(DETECTION) if name is None else str(name)
    if name.endswith(PLAN_SUFFIX):
        if weights is not None or device is not None:
            raise ConfigError(
                f"{name} is a plan: it holds its weights (no --weights) and runs on its backend (no --device)"
            )
        from edgevision.deploy.plan_signing import key_from  # onnx and onnxruntime, for plans only
        from edgevision.deploy.runtime import load_engine

        return detector_from_engine(load_engine(Path(name), key=key_from(plan_key)), postprocess, scales)
    if plan_key is not None:
        raise ConfigError(f"a plan key (--plan-key) is for a plan file (NAME{PLAN_SUFFIX}), not {name!r}")
    device = torch_device(device)
    check_task(name, DETECTION)
    model = create_model(name, weights=weights if weights is not None else model_info(name).weights_path)
    return Detector(model, postprocess, device, scales=scales)


def is_detector_plan(engine: Engine) -> bool:
    """Whether the plan was built from a registered detector."""
    return engine.plan.source.get("model") in list_models(DETECTION)


def detector_from_engine(
    engine: Engine, postprocess: PostProcess | None = None, scales: Sequence[float] | None = None
) -> Detector:
    """A detector around a loaded plan: the engine runs the network; decoding comes from the
    registered detector the plan was built from (its config with the options its weights implied,
    e.g. a landmark head; not its weights); ``scales`` is the image pyramid (default: that
    detector's ``test_scales``).

    Raises:
        UnknownModelError: the plan was not built from a registered detector.
        InputFileError: the plan's network does not have that detector's outputs.
    """
    from edgevision.deploy.export import OnnxNetwork

    name = engine.plan.source.get("model")
    if not is_detector_plan(engine):
        raise UnknownModelError(f"{engine.name} was not built from a detector (its source is {name!r})")
    model = create_model(name, **engine.plan.source.get("options", {}))
    network = OnnxNetwork(engine, model)
    return Detector(
        model,
        postprocess,
        torch.device("cpu"),
        network=network,
        preprocessing=engine.preprocessing,
        scales=scales,
    )
