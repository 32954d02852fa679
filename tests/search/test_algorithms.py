"""Every algorithm by name, and the resume property the runner relies on: replaying a search's
tells into a fresh strategy with the same seed continues it exactly as if it had never stopped."""

from __future__ import annotations

import random

import pytest

from edgevision.errors import ConfigError
from edgevision.search.algorithms import ALGORITHMS, make_strategy
from edgevision.search.cell_space import get_space
from edgevision.search.controller import PPOController
from edgevision.search.evolution import AgingEvolution
from edgevision.search.random_search import RandomSearch
from edgevision.search.space import SearchSpace
from edgevision.search.toy import BitStringSpace

SMALL = {  # sizes that make each algorithm leave its initial phase within a 30-trial test
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


@pytest.mark.parametrize("space", [BitStringSpace(12), get_space("nasnet")], ids=lambda space: space.name)
@pytest.mark.parametrize("algo", sorted(SMALL))
def test_replaying_the_tells_continues_the_search_exactly(algo: str, space: SearchSpace) -> None:
    noise = random.Random(0)
    uninterrupted = make_strategy(algo, space, 3, **SMALL[algo])
    asks, rewards = [], []
    for trial in range(30):
        asks.append(uninterrupted.ask())
        # Every 7th trial fails: a failure in the log must replay too.
        rewards.append(None if trial % 7 == 6 else noise.random())
        uninterrupted.tell(asks[-1], rewards[-1])

    resumed = make_strategy(algo, space, 3, **SMALL[algo])
    for arch, reward in zip(asks[:20], rewards[:20]):
        # As the runner replays its log: each architecture through its JSON form.
        resumed.tell(space.from_json(space.to_json(arch)), reward)
    for arch, reward in zip(asks[20:], rewards[20:]):
        assert resumed.ask() == arch
        resumed.tell(arch, reward)
    other_seed = make_strategy(algo, space, 4, **SMALL[algo])
    for arch, reward in zip(asks[:20], rewards[:20]):
        other_seed.tell(arch, reward)
    assert [other_seed.ask() for _ in range(5)] != asks[20:25]
