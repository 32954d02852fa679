"""The model registry: ``register_model`` adds a builder with its metadata, ``create_model`` /
``list_models`` / ``model_info`` read.

Contract: a builder is a callable taking keyword-only config overrides and returning an
``nn.Module``; names are unique (registering a name twice is an error). The metadata says what a
model is for, so that no list elsewhere names models (as torchvision's ``Weights.meta``):

- ``task``: ``"detection"`` for a face detector (it then follows the detector contract,
  :class:`edgevision.detection.detector.DetectorModel`), ``"classification"``,
  ``"recognition"`` for a face embedding network (its card's ``threshold`` is the cosine distance
  under which :func:`edgevision.recognition.recognizer.load_recognizer` calls two faces the same
  person), or None for a backbone;
- ``weights``: the bundled weights file (in :mod:`edgevision.weights`, or an absolute path), with a
  model card ``<stem>.json`` beside it whose fields are the weights' metadata;
- ``recipe``: the training recipe ``edgevision train`` uses (:mod:`edgevision.training.recipes`);
- ``default``: the model ``load_detector()`` (and each task's other defaults) use; one per task;
- ``options_from_weights``: the config options a weights file implies (state dict -> overrides),
  e.g. FaceBoxes' optional landmark head: ``create_model(name, weights=FILE)`` builds what the file
  holds (explicit overrides still win, and a file that does not fit them is refused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgevision.errors import ConfigError, UnknownModelError, WeightsError
from edgevision.models.weights import load_weights, state_dict_from_file
from edgevision.weights import WEIGHTS_DIR

DETECTION = "detection"
RECOGNITION = "recognition"
TASKS = (DETECTION, "classification", RECOGNITION)
OptionsFromWeights = Callable[[Mapping[str, torch.Tensor]], dict[str, Any]]


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its builder and metadata (see the module docstring)."""

    name: str
    builder: Callable[..., nn.Module]
    task: str | None = None
    weights: str | None = None
    recipe: str | None = None
    default: bool = False
    options_from_weights: OptionsFromWeights | None = None

    @property
    def weights_path(self) -> Path:
        """The bundled weights file.

        Raises:
            WeightsError: the model has no bundled weights, or the file is missing.
        """
        if self.weights is None:
            raise WeightsError(f"no bundled weights for model {self.name!r}; pass weights=PATH")
        path = WEIGHTS_DIR / self.weights
        if not path.is_file():
            raise WeightsError(f"bundled weights for {self.name!r} are missing from the installation: {path}")
        return path

    @property
    def weights_meta(self) -> Mapping[str, Any]:
        """The bundled weights' model card (``<stem>.json`` beside them), or ``{}``."""
        return weights_card(self.weights_path)


def weights_card(weights: str | Path) -> Mapping[str, Any]:
    """The model card of a weights file, bundled or not: ``<stem>.json`` beside it, or ``{}``.

    Raises:
        WeightsError: the card is there but is not a JSON object.
    """
    card = Path(weights).with_suffix(".json")
    if not card.is_file():
        return {}
    try:
        meta = json.loads(card.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"the model card {card} is not JSON: {error}") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"the model card {card} is not a JSON object")
    return meta


_MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    task: str | None = None,
    weights: str | None = None,
    recipe: str | None = None,
    default: bool = False,
    options_from_weights: OptionsFromWeights | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a model builder under ``name`` with its metadata.

    Raises:
        ValueError: ``name`` is taken, ``task`` is unknown, or ``default`` is claimed by a second
            model of the task.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if default and task is None:
        raise ValueError("a default model needs a task")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        if default and any(info.default and info.task == task for info in _MODELS.values()):
            raise ValueError(f"{default_model(task)!r} is already the default {task} model")
        _MODELS[name] = ModelInfo(name, builder, task, weights, recipe, default, options_from_weights)
        return builder

    return wrap


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (for tests and plug-ins that register temporarily)."""
    _MODELS.pop(name, None)


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, sorted; those of ``task`` only when it is given."""
    return sorted(name for name, info in _MODELS.items() if task is None or info.task == task)


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``.

    Raises:
        UnknownModelError: ``name`` is not registered.
    """
    if name not in _MODELS:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name]


def check_task(name: str, task: str) -> None:
    """Raise :class:`UnknownModelError` unless ``name`` is a registered model of ``task``."""
    of_task = list_models(task)
    if name not in of_task:
        known = f"; it is a registered model, not a {task} model" if name in _MODELS else ""
        raise UnknownModelError(f"unknown {task} model {name!r}{known}; {task} models: {', '.join(of_task)}")


def default_model(task: str) -> str:
    """The name of the default model of ``task``.

    Raises:
        UnknownModelError: no registered model of ``task`` is marked default.
    """
    for name, info in _MODELS.items():
        if info.task == task and info.default:
            return name
    raise UnknownModelError(f"no default {task} model is registered")


def create_model(name: str, *, weights: str | Path | None = None, **config: Any) -> nn.Module:
    """Build the registered model ``name`` with config overrides; with ``weights``, a weights
    file (state dict or training checkpoint) loaded strictly by
    :func:`edgevision.models.weights.load_weights`, else untrained weights. The options the file
    implies (:func:`weights_options`) come first; ``config`` overrides them.

    Raises:
        UnknownModelError: ``name`` is not registered.
        ConfigError: an override is not an option of the model's config.
        WeightsError: ``weights`` is unreadable, not finite, or does not fit the model.
    """
    info = model_info(name)
    if weights is not None:
        config = {**weights_options(name, weights), **config}
    try:
        model = info.builder(**config)
    except TypeError as error:  # dataclasses.replace on a field the config does not have
        if "unexpected keyword argument" not in str(error):
            raise
        raise ConfigError(
            f"{name!r} has no option {str(error).rsplit(' ', 1)[-1]}: {sorted(config)}"
        ) from None
    if weights is not None:
        load_weights(model, weights, name)
    return model


def weights_options(name: str, weights: str | Path) -> dict[str, Any]:
    """The config options of registered model ``name`` that the weights file implies (``{}`` for
    a model that declares none), e.g. ``{"landmarks": True}`` for FaceBoxes weights with a
    landmark head.

    Raises:
        UnknownModelError: ``name`` is not registered.
        WeightsError: ``weights`` is unreadable.
    """
    info = model_info(name)
    if info.options_from_weights is None:
        return {}
    return info.options_from_weights(state_dict_from_file(weights))
