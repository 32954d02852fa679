"""The PPO-trained LSTM controller (Zoph et al. 2018): the clipped loss, the baseline, the entropy
bonus's sign, the policy it samples from, and that it learns."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from edgevision.errors import ConfigError
from edgevision.search.controller import PPOController, ppo_loss


class GridSpace:
    """Two decisions, 3 then 4 choices; an architecture is its decision pair."""

    name = "grid"
    num_choices = (3, 4)

    def sample(self, rng: random.Random) -> tuple[int, int]:
        return (rng.randrange(3), rng.randrange(4))

    def mutate(self, arch: tuple[int, int], rng: random.Random) -> tuple[int, int]:
        return self.sample(rng)

    def encode(self, arch: tuple[int, int]) -> tuple[int, ...]:
        return arch

    def decode(self, decisions: list[int]) -> tuple[int, int]:
        return tuple(decisions)


GOOD = (2, 1)  # the one architecture with reward 1 in the learning tests


def test_clipped_loss_matches_hand_computation_on_both_sides() -> None:
    # (ratio, advantage) -> min(r A, clip(r, 0.8, 1.2) A):
    # (1.5, +1) -> 1.2 (clipped above), (0.5, +1) -> 0.5, (0.5, -1) -> -0.8 (clipped below),
    # (1.5, -1) -> -1.5, (1.1, +2) -> 2.2 (inside the range). Mean 1.6 / 5 = 0.32.
    ratio = torch.tensor([1.5, 0.5, 0.5, 1.5, 1.1], dtype=torch.float64)
    advantage = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0], dtype=torch.float64)
    log_prob = torch.log(ratio).requires_grad_()
    old = torch.zeros(5, dtype=torch.float64)
    entropy = torch.tensor([2.0, 2.0, 2.0, 4.0, 4.0], dtype=torch.float64)
    loss = ppo_loss(log_prob, old, advantage, entropy, clip=0.2, entropy_weight=0.1)
    assert loss.item() == pytest.approx(-0.32 - 0.1 * 2.8)
    loss.backward()
    # A clipped term passes no gradient; an unclipped one passes -r A / B.
    assert log_prob.grad.tolist() == pytest.approx([0.0, -0.5 / 5, 0.0, 1.5 / 5, -2.2 / 5])


def test_baseline_is_the_exponential_moving_average_and_failures_count_as_failure_reward() -> None:
    controller = PPOController(GridSpace(), batch=100, failure_reward=-1.0)
    rewards = [0.2, 0.6, None, 1.0, 0.5]
    baseline, advantages = None, []
    for reward in rewards:
        controller.tell((0, 0), reward)
        value = -1.0 if reward is None else reward
        baseline = value if baseline is None else baseline
        advantages.append(value - baseline)
        baseline = 0.95 * baseline + 0.05 * value
        assert controller.baseline == pytest.approx(baseline, abs=1e-12)
    assert [a for _, a in controller._pending] == pytest.approx(advantages, abs=1e-12)
    assert advantages[:3] == pytest.approx([0.0, 0.4, -1.0 - (0.95 * 0.2 + 0.05 * 0.6)])


def test_log_prob_is_a_distribution_over_all_sequences_and_sampling_follows_it() -> None:
    controller = train_on_grid(updates=2)  # GOOD at ~0.3, the rest 0.04 to 0.11
    probabilities = {
        arch: math.exp(controller.log_prob(arch)) for arch in itertools.product(range(3), range(4))
    }
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    asks = [controller.ask() for _ in range(2000)]
    for arch in [GOOD, (0, 1), (1, 3)]:
        assert asks.count(arch) / 2000 == pytest.approx(probabilities[arch], abs=0.035)


def train_on_grid(updates: int, seed: int = 0) -> PPOController:
    """``updates`` PPO updates of 10 tells each on the grid, reward 1 for GOOD and 0 otherwise;
    a learning rate of 0.02 instead of the paper's 3.5e-4, so that a few updates show the trend."""
    controller = PPOController(GridSpace(), seed=seed, hidden=16, lr=0.02, batch=10)
    for _ in range(10 * updates):
        arch = controller.ask()
        controller.tell(arch, float(arch == GOOD))
    assert controller.updates == updates
    return controller


def test_ppo_raises_the_probability_of_the_rewarded_sequence_well_above_chance() -> None:
    initial = math.exp(PPOController(GridSpace(), hidden=16).log_prob(GOOD))
    assert initial == pytest.approx(1 / 12, abs=0.02)  # the near-uniform initial policy
    # Measured: 0.99 to 1.0 after 10 updates (100 trials) for seeds 0 to 4.
    assert math.exp(train_on_grid(updates=10).log_prob(GOOD)) > 0.9


def test_the_entropy_bonus_raises_the_entropy() -> None:
    # Equal rewards make every advantage 0, so only the entropy term moves the policy.
    def entropy_after(entropy_weight: float) -> tuple[float, float]:
        controller = PPOController(GridSpace(), hidden=16, lr=0.05, batch=12, entropy_weight=entropy_weight)
        decisions = torch.tensor(list(itertools.product(range(3), range(4))))
        before = controller.policy(decisions)[2].mean().item()
        for arch in itertools.product(range(3), range(4)):
            controller.tell(arch, 0.5)
        assert controller.updates == 1
        return before, controller.policy(decisions)[2].mean().item()

    before, after = entropy_after(0.0)
    assert after == before  # zero gradient, no step
    before, after = entropy_after(1.0)
    assert after > before


def test_same_seed_and_tells_rebuild_the_same_controller() -> None:
    first, second = (
        train_on_grid(updates=3, seed=4),
        PPOController(GridSpace(), seed=4, hidden=16, lr=0.02, batch=10),
    )
    for arch, reward in first.history:
        second.tell(arch, reward)
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)
    assert [first.ask() for _ in range(20)] == [second.ask() for _ in range(20)]
    other = PPOController(GridSpace(), seed=5, hidden=16)
    assert not torch.equal(other.policy.start, PPOController(GridSpace(), seed=4, hidden=16).policy.start)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": math.nan}, "lr must be a finite number in (0, 1], got nan"),
        ({"clip": 0.0}, "clip must be a finite number in (0, 1), got 0.0"),
        ({"baseline_decay": 1.0}, "baseline_decay must be a finite number in [0, 1), got 1.0"),
        ({"batch": 0}, "batch must be an integer >= 1, got 0"),
        ({"hidden": 0}, "hidden must be an integer >= 1, got 0"),
        ({"entropy_weight": -1e-5}, "entropy_weight must be a finite number in [0, inf], got -1e-05"),
    ],
)
def test_bad_options_are_one_line_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        PPOController(GridSpace(), **options)
    assert str(error.value) == message
