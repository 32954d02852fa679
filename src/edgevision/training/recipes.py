"""Training recipes: how ``edgevision train MODEL`` trains each registered model.

A model names its recipe in the registry (``register_model(..., recipe=NAME)``); a recipe is a
function ``recipe(model_name, data, config, *, teacher, max_images, resume, model_options) ->
Path`` (the final weights; ``model_options`` are config overrides of the model, e.g. the ImageNet
weights its body starts from) that builds the model, its data set, objective, optimiser and
schedule and hands them to :func:`edgevision.training.loop.fit`. Registering a recipe is all a
new model needs to train.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from pathlib import Path
from typing import Any

from edgevision.errors import ConfigError
from edgevision.models import list_models, model_info
from edgevision.training.config import TrainConfig

Recipe = Callable[..., Path]
_RECIPES: dict[str, Recipe] = {}
# The recipes that ship with edgevision, by the module that registers each (imported on first use).
_BUILT_IN = {"single_shot_faces": "edgevision.training.single_shot_faces"}


def register_recipe(name: str) -> Callable[[Recipe], Recipe]:
    """Decorator that registers a training recipe under ``name`` (unique)."""

    def wrap(recipe: Recipe) -> Recipe:
        if name in _RECIPES:
            raise ValueError(f"training recipe {name!r} is already registered")
        _RECIPES[name] = recipe
        return recipe

    return wrap


def recipe_for(model: str) -> Recipe:
    """The recipe registered model ``model`` trains with.

    Raises:
        UnknownModelError: ``model`` is not registered.
        ConfigError: it has no recipe, or its recipe is not registered.
    """
    name = model_info(model).recipe
    if name is None:
        raise ConfigError(
            f"{model!r} has no training recipe; models that train: {', '.join(_trainable_models())}"
        )
    if name not in _RECIPES and name in _BUILT_IN:
        import_module(_BUILT_IN[name])
    if name not in _RECIPES:
        raise ConfigError(f"{model!r} names the training recipe {name!r}, which is not registered")
    return _RECIPES[name]


def train_model(
    model: str,
    data: Path,
    config: TrainConfig,
    *,
    teacher: Path | None = None,
    max_images: int | None = None,
    resume: bool = False,
    model_options: Mapping[str, Any] | None = None,
) -> Path:
    """Train registered model ``model`` (built with ``model_options`` overrides) with its recipe;
    returns the final weights' path."""
    recipe = recipe_for(model)
    return recipe(
        model,
        data,
        config,
        teacher=teacher,
        max_images=max_images,
        resume=resume,
        model_options=model_options or {},
    )


def _trainable_models() -> list[str]:
    return [name for name in list_models() if model_info(name).recipe is not None]
