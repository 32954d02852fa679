"""The toy search problem of Real et al. 2019, Appendix C: 100-bit strings, fitness = the fraction of
ones plus N(0, 0.01) noise, mutations flip one bit. Cheap enough to compare search algorithms over
thousands of models and several seeds."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from edgevision.errors import ConfigError
from edgevision.search.strategy import Strategy
from edgevision.validation import check_integer, check_number

BitString = tuple[int, ...]


class BitStringSpace:
    """Strings of ``bits`` bits; an architecture is a tuple of 0 / 1, its JSON form a list."""

    def __init__(self, bits: int = 100) -> None:
        self.bits = check_integer("bits", bits, 1)
        self.name = f"bits{bits}"
        self.num_choices: tuple[int, ...] = (2,) * bits

    def sample(self, rng: random.Random) -> BitString:
        return tuple(rng.randrange(2) for _ in range(self.bits))

    def mutate(self, arch: BitString, rng: random.Random) -> BitString:
        """Flip exactly one bit, chosen uniformly (Appendix C: never the identity)."""
        flip = rng.randrange(self.bits)
        return arch[:flip] + (1 - arch[flip],) + arch[flip + 1 :]

    def encode(self, arch: BitString) -> tuple[int, ...]:
        return self.decode(arch)

    def decode(self, decisions: Sequence[int]) -> BitString:
        if len(decisions) != self.bits or any(
            bit not in (0, 1) or isinstance(bit, bool) for bit in decisions
        ):
            raise ConfigError(f"a {self.name} architecture must be {self.bits} bits of 0 / 1")
        return tuple(decisions)

    def to_json(self, arch: BitString) -> list[int]:
        return list(arch)

    def from_json(self, data: Any) -> BitString:
        if not isinstance(data, list):
            raise ConfigError(f"a {self.name} architecture must be a JSON list, got {type(data).__name__}")
        return self.decode(data)


def true_fitness(arch: BitString) -> float:
    """The fraction of ones: what the noisy fitness measures."""
    return sum(arch) / len(arch)


def noisy_ones_fitness(arch: BitString, rng: random.Random, noise: float = 0.01) -> float:
    """:func:`true_fitness` plus N(0, ``noise``) (Appendix C: sigma 0.01, one bit's worth)."""
    return true_fitness(arch) + rng.gauss(0.0, check_number("noise", noise, 0.0, 1.0))


def run_toy(strategy: Strategy[BitString], budget: int, seed: int) -> list[float]:
    """Evaluate ``budget`` models one at a time (ask, noisy fitness, tell); return the best-so-far
    TRUE fitness after each, shape ``(budget,)``.

    The true fitness, not the noisy one the strategy sees: the best noisy value keeps rising with
    the number of samples even without progress (the maximum of n noises grows like
    0.01 sqrt(2 ln n)), which would flatter random search. ``seed`` seeds the noise only.
    """
    check_integer("budget", budget, 1)
    noise_rng = random.Random(check_integer("seed", seed, 0))
    best, curve = 0.0, []
    for _ in range(budget):
        arch = strategy.ask()
        strategy.tell(arch, noisy_ones_fitness(arch, noise_rng))
        best = max(best, true_fitness(arch))
        curve.append(best)
    return curve
