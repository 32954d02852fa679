"""The model registry: ``register_model`` adds a builder, ``create_model`` / ``list_models`` read.

Contract: a builder is a callable taking keyword-only config overrides and returning an
``nn.Module``; names are unique (registering a name twice is an error).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from edgevision.errors import UnknownModelError
from edgevision.models.weights import load_weights

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a model builder under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return wrap


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_BUILDERS)


def create_model(name: str, *, weights: str | Path | None = None, **config: Any) -> nn.Module:
    """Build the registered model ``name`` with config overrides; with ``weights``, a weights
    file (state dict or training checkpoint) loaded strictly by
    :func:`edgevision.models.weights.load_weights`, else untrained weights.

    Raises:
        UnknownModelError: ``name`` is not registered.
        WeightsError: ``weights`` is unreadable, not finite, or does not fit the model.
    """
    if name not in _BUILDERS:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    model = _BUILDERS[name](**config)
    if weights is not None:
        load_weights(model, weights, name)
    return model
