"""What the ask / tell strategies share: the told reward's check, and random streams that make a
resumed search continue as the uninterrupted one would have.

A resume replays only the tells (the trial log holds no asks), so a single generator advanced by
every ask would sit elsewhere after a replay. Instead, each ask draws from a fresh generator keyed
by (seed, results told so far, asks since the last tell): after replaying n tells, the next ask of
a one-worker search gets exactly the stream it would have got without the interruption.
"""

from __future__ import annotations

import math
import random

from edgevision.validation import check_integer, check_number


class AskStreams:
    """The generator for each ask of one strategy (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        self.seed = check_integer("seed", seed, 0)
        self._told = 0
        self._asked = 0

    def next(self) -> random.Random:
        """A generator of its own for this ask."""
        # random.Random hashes a str seed with SHA-512: stable across runs and Python processes,
        # unlike hash() of a tuple.
        stream = random.Random(f"{self.seed}:{self._told}:{self._asked}")
        self._asked += 1
        return stream

    def told(self) -> None:
        """Record one tell: the asks that follow draw from new keys."""
        self._told += 1
        self._asked = 0


def check_reward(reward: float | None) -> float | None:
    """``reward`` as a float, or None (a failed trial); ConfigError on NaN, inf or a non-number, which
    would silently corrupt a tournament or a baseline."""
    return None if reward is None else check_number("reward", reward, -math.inf, math.inf)
