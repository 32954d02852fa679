"""The toy problem of Real et al. 2019, Appendix C, and its acceptance: aging evolution beats
random search."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import numpy as np
import pytest

from edgevision.errors import ConfigError
from edgevision.search.evolution import AgingEvolution
from edgevision.search.random_search import RandomSearch
from edgevision.search.toy import BitStringSpace, noisy_ones_fitness, run_toy, true_fitness


def test_mutation_flips_exactly_one_uniformly_chosen_bit() -> None:
    space, rng = BitStringSpace(10), random.Random(0)
    parent = space.sample(rng)
    flipped = Counter()
    for _ in range(5000):
        child = space.mutate(parent, rng)
        (position,) = [i for i in range(10) if child[i] != parent[i]]
        flipped[position] += 1
    assert sorted(flipped) == list(range(10))
    assert all(count / 5000 == pytest.approx(0.1, abs=0.02) for count in flipped.values())


def test_samples_are_uniform_bits() -> None:
    space, rng = BitStringSpace(100), random.Random(1)
    ones = [sum(space.sample(rng)) for _ in range(400)]
    # Binomial(100, 0.5): mean 50, standard deviation 5.
    assert statistics.mean(ones) == pytest.approx(50, abs=1.0)
    assert statistics.stdev(ones) == pytest.approx(5, abs=0.6)


def test_round_trips_and_bad_architectures() -> None:
    space = BitStringSpace(4)
    arch = (1, 0, 0, 1)
    assert space.num_choices == (2, 2, 2, 2)
    assert space.decode(space.encode(arch)) == arch
    assert space.from_json(space.to_json(arch)) == arch and space.to_json(arch) == [1, 0, 0, 1]
    for bad in ([1, 0, 1], [1, 0, 2, 1], [1, 0, True, 1]):
        with pytest.raises(ConfigError, match="must be 4 bits of 0 / 1"):
            space.from_json(bad)
    with pytest.raises(ConfigError, match="must be a JSON list, got str"):
        space.from_json("1001")
    with pytest.raises(ConfigError, match="bits must be an integer >= 1"):
        BitStringSpace(0)


def test_noisy_fitness_is_the_fraction_of_ones_plus_sigma_001_noise() -> None:
    arch, rng = (1,) * 30 + (0,) * 70, random.Random(2)
    noise = [noisy_ones_fitness(arch, rng) - 0.3 for _ in range(4000)]
    assert statistics.mean(noise) == pytest.approx(0.0, abs=0.001)
    assert statistics.stdev(noise) == pytest.approx(0.01, rel=0.05)


def test_run_toy_returns_the_best_true_fitness_so_far() -> None:
    strategy = RandomSearch(BitStringSpace(20), seed=3)
    curve = run_toy(strategy, 50, seed=3)
    truths = [true_fitness(arch) for arch, _ in strategy.history]
    assert curve == list(np.maximum.accumulate(truths))
    # The strategy was told noisy values, not the truth.
    assert all(reward != truth for (_, reward), truth in zip(strategy.history, truths))


def test_aging_evolution_beats_random_search_at_every_checkpoint_after_the_first_population() -> None:
    # Appendix C's setting: 100 bits, P = 100, S = 10, 5 fixed seeds, 2000 models. The first
    # P asks of evolution are its random initial population, the very samples random search
    # draws with the same seed, so the curves agree up to P; from 2P (P evolved children) on,
    # evolution's mean must lead at every checkpoint, every 100 models.
    space, population, budget, seeds = BitStringSpace(100), 100, 2000, range(5)
    evolution = np.mean([run_toy(AgingEvolution(space, population, 10, seed=s), budget, s) for s in seeds], 0)
    random_search = np.mean([run_toy(RandomSearch(space, seed=s), budget, s) for s in seeds], 0)
    np.testing.assert_array_equal(evolution[:population], random_search[:population])
    checkpoints = np.arange(2 * population, budget + 1, 100) - 1
    assert (evolution[checkpoints] > random_search[checkpoints]).all(), (
        evolution[checkpoints] - random_search[checkpoints]
    )
    # And by far at the end (measured 0.96 against 0.67).
    assert evolution[-1] > 0.9 and random_search[-1] < 0.72
