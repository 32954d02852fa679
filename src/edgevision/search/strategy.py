"""The ask / tell contract every search algorithm follows.

The runner keeps ``workers`` trials in flight: it asks for an architecture whenever a worker is
free and tells the result as each trial finishes, in finishing order, so an algorithm never waits
for a whole generation (Real et al.'s asynchronous workers). Resuming a search replays the trial
log through :meth:`Strategy.tell` in the logged order before asking for anything new.
"""

from __future__ import annotations

from typing import Generic, Protocol

from edgevision.search.space import Arch


class Strategy(Protocol, Generic[Arch]):
    """A search algorithm over one :class:`~edgevision.search.space.SearchSpace`."""

    def ask(self) -> Arch:
        """The next architecture to evaluate."""
        ...

    def tell(self, arch: Arch, reward: float | None) -> None:
        """The result of evaluating ``arch`` (higher is better); ``None`` when its trial failed
        (crashed or ran out of time)."""
        ...
