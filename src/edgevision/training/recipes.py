"""Training recipes: how ``edgevision train MODEL`` trains each registered model.

A model names its recipe in the registry (``register_model(..., recipe=NAME)``); a recipe is a
function ``recipe(model_name, data, config, *, resume, model_options, **options) -> Path`` (the
final weights; ``model_options`` are config overrides of the model, e.g. the ImageNet weights its
body starts from; ``options`` are the recipe's own keywords, e.g. ``teacher`` and ``max_images``
for detectors) that builds the model, its data set, objective, optimiser and schedule and hands
them to :func:`edgevision.training.loop.fit`. A recipe registers the :class:`TrainConfig` values
it trains with by default where TrainConfig's (a detector's) do not suit it, and the folder of the
default data directory ``--data`` means when it is not given. Registering a recipe is all a new
model needs to train.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from edgevision.errors import ConfigError
from edgevision.models import list_models, model_info
from edgevision.training.config import TrainConfig

Recipe = Callable[..., Path]


@dataclass(frozen=True)
class RecipeInfo:
    """A registered recipe: the function, the :class:`TrainConfig` fields it sets by default
    (overriding TrainConfig's), and the folder of the default data directory that is its data
    when none is given (None: the recipe takes ``data=None``)."""

    recipe: Recipe
    config_defaults: Mapping[str, Any] = field(default_factory=dict)
    data_folder: str | None = None


_RECIPES: dict[str, RecipeInfo] = {}
# The recipes that ship with edgevision, by the module that registers each (imported on first use).
_BUILT_IN = {
    "single_shot_faces": "edgevision.training.single_shot_faces",
    "face_embedding": "edgevision.training.face_embedding",
}


def register_recipe(
    name: str, *, config_defaults: Mapping[str, Any] | None = None, data_folder: str | None = None
) -> Callable[[Recipe], Recipe]:
    """Decorator that registers a training recipe under ``name`` (unique)."""

    def wrap(recipe: Recipe) -> Recipe:
        if name in _RECIPES:
            raise ValueError(f"training recipe {name!r} is already registered")
        _RECIPES[name] = RecipeInfo(recipe, dict(config_defaults or {}), data_folder)
        return recipe

    return wrap


def recipe_for(model: str) -> Recipe:
    """The recipe registered model ``model`` trains with (see :func:`recipe_info`)."""
    return recipe_info(model).recipe


def recipe_info(model: str) -> RecipeInfo:
    """The recipe registered model ``model`` trains with, and its defaults.

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
    data: Path | None,
    config: TrainConfig,
    *,
    resume: bool = False,
    model_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> Path:
    """Train registered model ``model`` (built with ``model_options`` overrides) with its recipe;
    returns the final weights' path. ``options`` left None or False are not passed on.

    Raises:
        ConfigError: an option set that the model's recipe does not take (named as the command
            line spells it), before anything is read.
    """
    recipe = recipe_for(model)
    given = {name: value for name, value in options.items() if value is not None and value is not False}
    accepted = inspect.signature(recipe).parameters
    foreign = [name for name in given if name not in accepted]
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        verb = "does" if len(foreign) == 1 else "do"
        raise ConfigError(f"{flags} {verb} not apply to training {model} (recipe {model_info(model).recipe})")
    return recipe(model, data, config, resume=resume, model_options=model_options or {}, **given)


def _trainable_models() -> list[str]:
    return [name for name in list_models() if model_info(name).recipe is not None]
