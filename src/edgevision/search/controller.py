"""The RNN controller of Zoph et al., "Learning Transferable Architectures for Scalable Image
Recognition", CVPR 2018 (Sec. 3, 4), trained with PPO (Schulman et al. 2017), in ask / tell form.

A one-layer LSTM (100 units) emits the space's decisions one by one: step k's softmax has
``space.num_choices[k]`` classes, and the embedding of the decision it took is step k + 1's input
(step 0's input is a learned vector). Each told reward becomes an advantage, reward minus an
exponential moving average of past rewards (decay 0.95); every ``batch`` tells, ``ppo_epochs``
passes of Adam (learning rate 3.5e-4) minimise the clipped surrogate (clip 0.2) minus an entropy
bonus (weight 1e-5). The paper gives no batch size or epoch count; ours are defaults to tune.

The behaviour policy: a tell carries only the architecture, so its log-probability under the
policy that sampled it is recomputed at the update, with the parameters as they are before the
update's first epoch. With one worker that is exactly the sampling policy (the parameters change
only at updates); with several, an architecture asked before an update and told after it was
sampled by the previous parameters, which the clipped ratio tolerates. This makes a replayed log
rebuild the same controller.

Failed trials (reward None) count as ``failure_reward`` (default 0: for accuracy-based rewards,
as bad as a child can be), so the controller learns to avoid what crashes or times out.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Generic

import torch
from torch import nn

from edgevision.errors import ConfigError
from edgevision.search._ask_tell import AskStreams, check_reward
from edgevision.search.space import Arch, SearchSpace
from edgevision.validation import check_integer, check_number


def ppo_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantage: torch.Tensor,
    entropy: torch.Tensor,
    clip: float,
    entropy_weight: float,
) -> torch.Tensor:
    """Negative clipped surrogate minus the entropy bonus, averaged over the batch (Schulman et
    al. 2017, Eq. 7): ``-mean(min(r A, clip(r, 1 - clip, 1 + clip) A)) - w mean(H)`` with
    ``r = exp(log_prob - old_log_prob)``. All inputs ``(B,)``; returns a scalar."""
    ratio = torch.exp(log_prob - old_log_prob)
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1.0 - clip, 1.0 + clip) * advantage)
    return -surrogate.mean() - entropy_weight * entropy.mean()


class _Policy(nn.Module):
    """The LSTM that emits a decision sequence (see the module docstring)."""

    def __init__(self, num_choices: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.start = nn.Parameter(torch.empty(hidden))
        self.cell = nn.LSTMCell(hidden, hidden)
        # A table per position: positions differ in their number of choices and in meaning.
        self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in num_choices[:-1])
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in num_choices)
        # Uniform in [-0.08, 0.08] as Zoph & Le 2017 (Sec. 4.1): a near-uniform first policy.
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.08, 0.08)

    def forward(
        self, decisions: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score ``decisions`` ``(B, K)`` (int64), or sample one sequence with ``generator`` when
        None. Returns the decisions ``(B, K)``, their log-probabilities ``(B,)`` and the entropy of
        the policy's K softmaxes along them, summed ``(B,)``."""
        rows = 1 if decisions is None else decisions.shape[0]
        inputs = self.start.expand(rows, -1)
        state = None
        taken, log_prob, entropy = [], torch.zeros(rows), torch.zeros(rows)
        for k, head in enumerate(self.heads):
            state = self.cell(inputs, state)
            log_probs = torch.log_softmax(head(state[0]), dim=-1)
            if decisions is None:
                choice = torch.multinomial(log_probs.exp(), 1, generator=generator)[:, 0]
            else:
                choice = decisions[:, k]
            taken.append(choice)
            log_prob = log_prob + log_probs.gather(1, choice[:, None])[:, 0]
            entropy = entropy - (log_probs.exp() * log_probs).sum(-1)
            if k < len(self.embeddings):
                inputs = self.embeddings[k](choice)
        return torch.stack(taken, dim=1), log_prob, entropy


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread: the controller's arithmetic, and so a replay, is the same in every process."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class PPOController(Generic[Arch]):
    """Zoph et al. 2018's controller over ``space`` (see the module docstring for the rules).

    Args:
        space: any :class:`~edgevision.search.space.SearchSpace` (its ``num_choices``,
            ``encode`` and ``decode``).
        seed: seeds the initial weights and the sampling; the same tells give the same asks.
        hidden: LSTM units (paper: 100).
        lr: Adam learning rate (paper: 3.5e-4).
        clip: PPO clipping range (paper: 0.2).
        entropy_weight: weight of the entropy bonus (paper: 1e-5).
        baseline_decay: decay of the reward's moving average (paper: 0.95).
        batch: tells per PPO update.
        ppo_epochs: optimiser steps per update, each over the whole batch.
        failure_reward: the reward of a failed trial.
    """

    def __init__(
        self,
        space: SearchSpace[Arch],
        seed: int = 0,
        hidden: int = 100,
        lr: float = 3.5e-4,
        clip: float = 0.2,
        entropy_weight: float = 1e-5,
        baseline_decay: float = 0.95,
        batch: int = 20,
        ppo_epochs: int = 4,
        failure_reward: float = 0.0,
    ) -> None:
        self.space = space
        if not space.num_choices or any(not isinstance(n, int) or n < 1 for n in space.num_choices):
            raise ConfigError(
                f"space {space.name!r} must have num_choices of positive ints, got {space.num_choices}"
            )
        check_integer("hidden", hidden, 1)
        check_number("lr", lr, 0.0, 1.0, low_open=True)
        self.clip = check_number("clip", clip, 0.0, 1.0, low_open=True, high_open=True)
        self.entropy_weight = check_number("entropy_weight", entropy_weight, 0.0, math.inf)
        self.baseline_decay = check_number("baseline_decay", baseline_decay, 0.0, 1.0, high_open=True)
        self.batch = check_integer("batch", batch, 1)
        self.ppo_epochs = check_integer("ppo_epochs", ppo_epochs, 1)
        self.failure_reward = check_number("failure_reward", failure_reward, -math.inf, math.inf)
        self._streams = AskStreams(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = _Policy(tuple(space.num_choices), hidden)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        # None until the first tell, which sets it: the first advantage is 0, not the whole reward.
        self.baseline: float | None = None
        self.updates = 0
        self.history: list[tuple[Arch, float | None]] = []
        self._pending: list[tuple[tuple[int, ...], float]] = []  # (decisions, advantage)

    def ask(self) -> Arch:
        """An architecture sampled from the current policy."""
        generator = torch.Generator().manual_seed(self._streams.next().getrandbits(63))
        with _one_thread(), torch.no_grad():
            decisions, _, _ = self.policy(generator=generator)
        return self.space.decode(decisions[0].tolist())

    def tell(self, arch: Arch, reward: float | None) -> None:
        """Record ``reward`` for ``arch`` (None: failed); every ``batch`` tells, a PPO update."""
        reward = check_reward(reward)
        decisions = tuple(self.space.encode(arch))
        self.history.append((arch, reward))
        self._streams.told()
        value = self.failure_reward if reward is None else reward
        if self.baseline is None:
            self.baseline = value
        # The baseline before this reward: a reward must not lower its own advantage.
        self._pending.append((decisions, value - self.baseline))
        self.baseline = self.baseline_decay * self.baseline + (1.0 - self.baseline_decay) * value
        if len(self._pending) == self.batch:
            self._update()

    def log_prob(self, arch: Arch) -> float:
        """log P(arch) under the current policy."""
        with _one_thread(), torch.no_grad():
            _, log_prob, _ = self.policy(torch.tensor([self.space.encode(arch)]))
        return float(log_prob[0])

    def _update(self) -> None:
        decisions = torch.tensor([d for d, _ in self._pending])
        advantage = torch.tensor([a for _, a in self._pending])
        self._pending.clear()
        with _one_thread():
            with torch.no_grad():
                _, old_log_prob, _ = self.policy(decisions)
            for _ in range(self.ppo_epochs):
                _, log_prob, entropy = self.policy(decisions)
                loss = ppo_loss(log_prob, old_log_prob, advantage, entropy, self.clip, self.entropy_weight)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
        self.updates += 1
