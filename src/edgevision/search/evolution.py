"""Regularized (aging) evolution, Real et al., "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019, Algorithm 1, in ask / tell form for asynchronous workers.

Until the population holds P models, every ask is a random architecture (the initialisation
loop); after that an ask samples S members uniformly without replacement and returns a mutation
of the best of them (tournament selection). Each tell appends the model to the population and,
past P members, removes the oldest (aging, Sec. 2) or, with ``aging=False``, the worst (the
non-aging baseline of Sec. 3). A failed trial (reward None) joins only :attr:`history`.
"""

from __future__ import annotations

from collections import deque
from typing import Generic

from edgevision.search._ask_tell import AskStreams, check_reward
from edgevision.search.space import Arch, SearchSpace
from edgevision.validation import check_integer


class AgingEvolution(Generic[Arch]):
    """Aging evolution (``aging=True``) or its non-aging variant over ``space``.

    Args:
        space: any :class:`~edgevision.search.space.SearchSpace`.
        population: P, the models kept (paper: 100 on the toy problem and for AmoebaNet).
        sample: S, the tournament size (paper: 25 for AmoebaNet-A, 10 on the toy problem).
        seed: the random seed; the same seed and the same tells give the same asks.
        aging: remove the oldest member (True) or the worst (False).
    """

    def __init__(
        self,
        space: SearchSpace[Arch],
        population: int = 100,
        sample: int = 25,
        seed: int = 0,
        aging: bool = True,
    ) -> None:
        self.space = space
        self.population_size = check_integer("population", population, 2)
        self.sample_size = check_integer("sample", sample, 1, population)
        self.aging = bool(aging)
        self._streams = AskStreams(seed)
        # Oldest first: the left end is the one aging removes.
        self.population: deque[tuple[Arch, float]] = deque()
        self.history: list[tuple[Arch, float | None]] = []

    def ask(self) -> Arch:
        """A random architecture while the population is short of P, else a mutated parent."""
        rng = self._streams.next()
        if len(self.population) < self.population_size:
            return self.space.sample(rng)
        candidates = rng.sample(list(self.population), self.sample_size)
        # max keeps the first of equal rewards; the sample's order is random, so ties break randomly.
        parent, _ = max(candidates, key=lambda member: member[1])
        return self.space.mutate(parent, rng)

    def tell(self, arch: Arch, reward: float | None) -> None:
        """Add ``arch`` with ``reward`` (None: the trial failed and is only recorded)."""
        reward = check_reward(reward)
        self.history.append((arch, reward))
        self._streams.told()
        if reward is None:
            return
        self.population.append((arch, reward))
        if len(self.population) > self.population_size:
            if self.aging:
                self.population.popleft()
            else:
                # The worst; of equal rewards the oldest, as aging would pick.
                worst = min(range(len(self.population)), key=lambda i: self.population[i][1])
                del self.population[worst]
