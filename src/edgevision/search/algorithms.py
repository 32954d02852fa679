"""The search algorithms by name, as ``edgevision search --algo`` takes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgevision.errors import ConfigError
from edgevision.search.controller import PPOController
from edgevision.search.evolution import AgingEvolution
from edgevision.search.random_search import RandomSearch
from edgevision.search.space import SearchSpace
from edgevision.search.strategy import Strategy

# name -> builder(space, seed=..., **options) returning a Strategy.
ALGORITHMS: dict[str, Callable[..., Strategy]] = {
    "evolution": AgingEvolution,
    "evolution-nonaging": lambda space, seed, **kw: AgingEvolution(space, seed=seed, aging=False, **kw),
    "rl": PPOController,
    "random": RandomSearch,
}


def make_strategy(algo: str, space: SearchSpace, seed: int, **kw: Any) -> Strategy:
    """The strategy ``algo`` over ``space``; ``kw`` are its options (e.g. ``population``,
    ``sample`` for evolution; ``batch`` for rl). ConfigError on an unknown name or option."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"unknown search algorithm {algo!r}; known: {', '.join(ALGORITHMS)}")
    try:
        return ALGORITHMS[algo](space, seed=seed, **kw)
    except TypeError as error:  # an option the algorithm does not take
        raise ConfigError(f"search algorithm {algo!r}: {error}") from None
