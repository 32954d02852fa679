"""The MnasNet reward against hand-computed values, and the Pareto front of a hand-made set."""

from __future__ import annotations

import math

import pytest

from edgevision.errors import ConfigError
from edgevision.search.objective import latency_reward, pareto_front


@pytest.mark.parametrize(
    "accuracy, latency, target, w, expected",
    [
        (0.8, 10.0, 10.0, -0.07, 0.8),  # on target: the accuracy itself
        (0.8, 20.0, 10.0, -0.07, 0.8 * 2**-0.07),  # twice too slow: x 0.95265
        (0.8, 5.0, 10.0, -0.07, 0.8 * 2**0.07),  # twice as fast: x 1.04971
        (0.5, 40.0, 10.0, -1.0, 0.125),  # hard-ish constraint: 0.5 / 4
        (0.9, 3.0, 10.0, 0.0, 0.9),  # w = 0 ignores latency
    ],
)
def test_reward_by_hand(accuracy: float, latency: float, target: float, w: float, expected: float) -> None:
    assert latency_reward(accuracy, latency, target, w) == pytest.approx(expected, rel=1e-12)


def test_reward_numbers_as_mnasnet_states() -> None:
    # MnasNet Sec. 3.1: with w = -0.07, twice the latency costs about 5 % of the reward.
    assert latency_reward(1.0, 2.0, 1.0) == pytest.approx(0.9526, abs=1e-4)


@pytest.mark.parametrize(
    "args, name",
    [
        ((float("nan"), 1.0, 1.0), "accuracy"),
        ((1.5, 1.0, 1.0), "accuracy"),
        ((0.5, 0.0, 1.0), "latency_ms"),
        ((0.5, math.inf, 1.0), "latency_ms"),
        ((0.5, 1.0, -2.0), "target_ms"),
        ((0.5, 1.0, float("nan")), "target_ms"),
    ],
)
def test_reward_refuses_bad_numbers(args: tuple, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        latency_reward(*args)
    with pytest.raises(ConfigError, match="w must"):
        latency_reward(0.5, 1.0, 1.0, w=float("nan"))


def brute_force_front(points: list[tuple[float, float]]) -> list[int]:
    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and a != b

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]


def test_pareto_front_hand_made_with_ties() -> None:
    points = [
        (0.90, 10.0),  # 0: front (most accurate)
        (0.80, 5.0),  # 1: front
        (0.80, 6.0),  # 2: dominated by 1 (same accuracy, slower)
        (0.70, 5.0),  # 3: dominated by 1 (same latency, less accurate)
        (0.60, 2.0),  # 4: front (fastest)
        (0.90, 10.0),  # 5: equal to 0: kept with it
        (0.85, 12.0),  # 6: dominated by 0
        (0.60, 2.0),  # 7: equal to 4: kept
        (0.50, 3.0),  # 8: dominated by 4
    ]
    assert pareto_front(points) == [0, 1, 4, 5, 7]
    assert pareto_front(points) == brute_force_front(points)


def test_pareto_front_matches_brute_force_on_a_grid() -> None:
    # Coarse values make many ties of accuracy, of latency, and of both.
    points = [((i * 7) % 5 / 4, 1.0 + (i * 3) % 4) for i in range(40)]
    assert pareto_front(points) == brute_force_front(points)
    assert pareto_front([]) == []


@pytest.mark.parametrize("point", [(0.5, 0.0), (float("nan"), 1.0), (0.5, math.inf), (0.5,), "ab"])
def test_pareto_front_refuses_bad_points(point) -> None:
    with pytest.raises(ConfigError, match="point 1"):
        pareto_front([(0.5, 1.0), point])
