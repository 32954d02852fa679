"""Aging evolution (Real et al. 2019, Algorithm 1): who dies, who is the parent, what failed
trials do, and the initialisation phase."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from edgevision.errors import ConfigError
from edgevision.search.evolution import AgingEvolution
from edgevision.search.random_search import RandomSearch
from edgevision.search.toy import BitStringSpace


class RecordingSpace:
    """Architectures are ints: ``sample`` returns 1, 2, 3, ...; ``mutate`` records its parent and
    returns its negation (so a mutated child is told apart from a sample)."""

    name = "recording"
    num_choices = (1,)

    def __init__(self) -> None:
        self.sampled = 0
        self.parents: list[int] = []

    def sample(self, rng: random.Random) -> int:
        self.sampled += 1
        return self.sampled

    def mutate(self, arch: int, rng: random.Random) -> int:
        self.parents.append(arch)
        return -arch


def told(strategy: AgingEvolution, rewards: list[float | None]) -> AgingEvolution:
    """Tell architectures 1, 2, ... with ``rewards``."""
    for arch, reward in enumerate(rewards, start=1):
        strategy.tell(arch, reward)
    return strategy


def test_aging_removes_the_oldest() -> None:
    evolution = told(AgingEvolution(RecordingSpace(), population=3, sample=2), [5.0, 1.0, 3.0, 4.0, 2.0])
    assert list(evolution.population) == [(3, 3.0), (4, 4.0), (5, 2.0)]


def test_non_aging_removes_the_worst() -> None:
    evolution = AgingEvolution(RecordingSpace(), population=3, sample=2, aging=False)
    told(evolution, [5.0, 1.0, 3.0, 4.0])  # 2 (reward 1) dies
    assert list(evolution.population) == [(1, 5.0), (3, 3.0), (4, 4.0)]
    evolution.tell(5, 2.0)  # the newcomer is the worst and dies at once
    assert list(evolution.population) == [(1, 5.0), (3, 3.0), (4, 4.0)]
    evolution.tell(6, 3.0)  # ties with 3: the older of the two dies
    assert list(evolution.population) == [(1, 5.0), (4, 4.0), (6, 3.0)]


def test_the_parent_is_the_best_of_a_sample_without_replacement() -> None:
    # P = 5, S = 3: the member ranked j (1 = best) is the parent when it is sampled and no better
    # one is, with probability C(5 - j, 2) / C(5, 3) = 0.6, 0.3, 0.1, 0, 0. Sampling with
    # replacement would make the best the parent 1 - 0.8^3 = 0.49 of the time.
    space = RecordingSpace()
    evolution = told(AgingEvolution(space, population=5, sample=3, seed=3), [0.3, 0.9, 0.1, 0.5, 0.7])
    children = [evolution.ask() for _ in range(3000)]
    assert children == [-parent for parent in space.parents]
    frequency = Counter(space.parents)
    expected = {2: math.comb(4, 2) / 10, 5: math.comb(3, 2) / 10, 4: math.comb(2, 2) / 10, 1: 0.0, 3: 0.0}
    for arch, probability in expected.items():
        assert frequency[arch] / 3000 == pytest.approx(probability, abs=0.03)


def test_asks_are_random_until_the_population_is_full_and_failures_do_not_fill_it() -> None:
    space = RecordingSpace()
    evolution = told(AgingEvolution(space, population=3, sample=2), [1.0, None, 2.0, None])
    assert [arch for arch, _ in evolution.population] == [1, 3]
    assert [arch for arch, _ in evolution.history] == [1, 2, 3, 4]
    assert evolution.ask() > 0 and not space.parents  # still sampling: only 2 of 3 members
    evolution.tell(5, 0.5)
    assert evolution.ask() < 0 and space.parents  # now mutating


def test_a_failed_trial_never_enters_the_population() -> None:
    evolution = told(AgingEvolution(RecordingSpace(), population=2, sample=1), [1.0, 2.0, None, None, 3.0])
    assert list(evolution.population) == [(2, 2.0), (5, 3.0)]
    assert evolution.history[2:4] == [(3, None), (4, None)]


def test_initial_asks_are_random_search_with_the_same_seed() -> None:
    space = BitStringSpace(16)
    evolution, random_search = (
        AgingEvolution(space, population=10, sample=3, seed=7),
        RandomSearch(space, seed=7),
    )
    for reward in range(10):
        arch = evolution.ask()
        assert arch == random_search.ask()
        evolution.tell(arch, float(reward))
        random_search.tell(arch, float(reward))
    # Full: the next ask is a one-bit mutation of a member, not a fresh sample.
    child = evolution.ask()
    assert min(sum(a != b for a, b in zip(child, member)) for member, _ in evolution.population) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"population": 1}, "population must be an integer >= 2, got 1"),
        ({"population": 10, "sample": 11}, "sample must be an integer in [1, 10], got 11"),
        ({"sample": 0}, "sample must be an integer in [1, 100], got 0"),
        ({"population": 10.0}, "population must be an integer >= 2, got 10.0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_options_are_one_line_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        AgingEvolution(RecordingSpace(), **options)
    assert str(error.value) == message


@pytest.mark.parametrize("reward", [math.nan, math.inf, "0.5"])
def test_a_non_finite_reward_is_refused(reward: object) -> None:
    evolution = AgingEvolution(RecordingSpace(), population=2, sample=1)
    with pytest.raises(ConfigError, match="reward must be a finite number"):
        evolution.tell(1, reward)  # type: ignore[arg-type]
    assert not evolution.history
