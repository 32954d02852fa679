"""The latency-aware reward and the accuracy / latency Pareto front.

MnasNet (Tan et al., CVPR 2019), Eq. 2: ``reward = ACC(m) x [LAT(m) / T]^w`` with ``w = alpha``
when ``LAT(m) <= T`` and ``beta`` otherwise; its soft constraint takes ``alpha = beta = -0.07``
(Sec. 3.1), so a model twice as slow as the target must be about 5 % more accurate to tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edgevision.errors import ConfigError
from edgevision.validation import check_number


def latency_reward(accuracy: float, latency_ms: float, target_ms: float, w: float = -0.07) -> float:
    """``accuracy * (latency_ms / target_ms) ** w`` (MnasNet Eq. 2, alpha = beta = ``w``).

    Raises:
        ConfigError: ``accuracy`` outside [0, 1], a latency or target not finite and positive, or
            ``w`` not finite.
    """
    check_number("accuracy", accuracy, 0.0, 1.0)
    check_number("latency_ms", latency_ms, 0.0, math.inf, low_open=True, high_open=True)
    check_number("target_ms", target_ms, 0.0, math.inf, low_open=True, high_open=True)
    check_number("w", w, -math.inf, math.inf, low_open=True, high_open=True)
    return accuracy * (latency_ms / target_ms) ** w


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices, in input order, of the ``(accuracy, latency_ms)`` points no other point dominates
    (at least as accurate and at least as fast, and strictly better in one). Equal points do not
    dominate each other, so all of them are kept.

    Raises:
        ConfigError: a point that is not two finite numbers, or a latency that is not positive.
    """
    checked = []
    for i, point in enumerate(points):
        try:
            accuracy, latency = (float(v) for v in point)
        except (TypeError, ValueError):
            raise ConfigError(f"point {i} must be (accuracy, latency_ms), got {point!r}") from None
        if not (math.isfinite(accuracy) and math.isfinite(latency) and latency > 0):
            raise ConfigError(
                f"point {i} needs a finite accuracy and a finite positive latency, got {point!r}"
            )
        checked.append((accuracy, latency))
    # Most accurate first, faster first among equals: a point is dominated exactly when an earlier
    # one is at least as fast and not equal to it.
    order = sorted(range(len(checked)), key=lambda i: (-checked[i][0], checked[i][1]))
    front, best_latency, best_point = [], math.inf, None
    for i in order:
        accuracy, latency = checked[i]
        if latency < best_latency or (latency == best_latency and checked[i] == best_point):
            front.append(i)
            if latency < best_latency:
                best_latency, best_point = latency, checked[i]
    return sorted(front)
