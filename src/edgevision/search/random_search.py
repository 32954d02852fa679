"""Random search: every ask is an independent uniform sample of the space (the baseline of Real
et al. 2019, Sec. 3, and of Zoph et al. 2018, Sec. 4.4)."""

from __future__ import annotations

from typing import Generic

from edgevision.search._ask_tell import AskStreams, check_reward
from edgevision.search.space import Arch, SearchSpace


class RandomSearch(Generic[Arch]):
    """Uniform samples of ``space``; tells are only recorded in :attr:`history`.

    With the same seed, its asks are those :class:`~edgevision.search.evolution.AgingEvolution`
    makes while filling its population (both draw each ask from the same keyed stream).
    """

    def __init__(self, space: SearchSpace[Arch], seed: int = 0) -> None:
        self.space = space
        self._streams = AskStreams(seed)
        self.history: list[tuple[Arch, float | None]] = []

    def ask(self) -> Arch:
        return self.space.sample(self._streams.next())

    def tell(self, arch: Arch, reward: float | None) -> None:
        reward = check_reward(reward)
        self.history.append((arch, reward))
        self._streams.told()
