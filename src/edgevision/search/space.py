"""What a search space offers the search algorithms.

An algorithm sees a space only through :class:`SearchSpace`: it samples and mutates
architectures (evolution, random search) or emits a fixed-length sequence of discrete decisions
and decodes it (the RL controller). Architectures are hashable, immutable values (a
:class:`~edgevision.layers.nas_ops.Genotype` for the cell spaces, a tuple of bits for the toy
problem) and round-trip through JSON with :meth:`SearchSpace.to_json` / :meth:`from_json`.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

Arch = TypeVar("Arch", bound=Hashable)


@runtime_checkable
class SearchSpace(Protocol[Arch]):
    """A discrete architecture space."""

    name: str
    # Decision k of an architecture takes one of num_choices[k] values (the controller's softmax
    # sizes, in the order it emits them).
    num_choices: tuple[int, ...]

    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random architecture."""
        ...

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """One random mutation of ``arch`` (may return ``arch`` itself: the identity mutation)."""
        ...

    def encode(self, arch: Arch) -> tuple[int, ...]:
        """The decision sequence that :meth:`decode` turns back into ``arch``."""
        ...

    def decode(self, decisions: Sequence[int]) -> Arch:
        """The architecture a decision sequence describes; ConfigError on a bad sequence."""
        ...

    def to_json(self, arch: Arch) -> Any:
        """Plain lists, dicts, numbers and strings."""
        ...

    def from_json(self, data: Any) -> Arch:
        """Inverse of :meth:`to_json`; ConfigError naming the problem on bad data."""
        ...
