"""Every algorithm by name, and the resume property the runner relies on: replaying a search's
tells into a fresh strategy with the same seed continues it exactly as if it had never stopped."""

from __future__ import annotations

import random

import pytest

from edgevision.errors import ConfigError
from edgevision.search.algorithms import ALGORITHMS, make_strategy
from edgevision.search.controller import PPOController
from edgevision.search.evolution import AgingEvolution
from edgevision.search.random_search import RandomSearch
from edgevision.search.toy import BitStringSpace, noisy_ones_fitness

SMALL = {  # sizes that make each algorithm leave its initial phase within a 40-trial test
    "evolution": {"population": 10, "sample": 3},
    "evolution-nonaging": {"population": 10, "sample": 3},
    "rl": {"batch": 5, "hidden": 16},
    "random": {},
}


def test_names_build_the_right_strategies() -> None:
    space = BitStringSpace(8)
    assert set(ALGORITHMS) == set(SMALL)
    aging, non_aging = make_strategy("evolution", space, 0), make_strategy("evolution-nonaging", space, 0)
    assert isinstance(aging, AgingEvolution) and aging.aging and aging.sample_size == 25
    assert isinstance(non_aging, AgingEvolution) and not non_aging.aging
    assert isinstance(make_strategy("rl", space, 0, batch=7), PPOController)
    assert isinstance(make_strategy("random", space, 0), RandomSearch)


def test_unknown_name_or_option_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as error:
        make_strategy("bayesian", BitStringSpace(8), 0)
    assert (
        str(error.value)
        == "unknown search algorithm 'bayesian'; known: evolution, evolution-nonaging, rl, random"
    )
    with pytest.raises(ConfigError, match="search algorithm 'random': .*population"):
        make_strategy("random", BitStringSpace(8), 0, population=10)


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_replaying_the_tells_continues_the_search_exactly(algo: str) -> None:
    space, noise = BitStringSpace(12), random.Random(0)
    uninterrupted = make_strategy(algo, space, 3, **SMALL[algo])
    asks, rewards = [], []
    for trial in range(40):
        asks.append(uninterrupted.ask())
        # Every 7th trial fails: a failure in the log must replay too.
        rewards.append(None if trial % 7 == 6 else noisy_ones_fitness(asks[-1], noise))
        uninterrupted.tell(asks[-1], rewards[-1])

    resumed = make_strategy(algo, space, 3, **SMALL[algo])
    for arch, reward in zip(asks[:25], rewards[:25]):
        resumed.tell(arch, reward)
    for arch, reward in zip(asks[25:], rewards[25:]):
        assert resumed.ask() == arch
        resumed.tell(arch, reward)
    other_seed = make_strategy(algo, space, 4, **SMALL[algo])
    for arch, reward in zip(asks[:25], rewards[:25]):
        other_seed.tell(arch, reward)
    assert [other_seed.ask() for _ in range(5)] != asks[25:30]
