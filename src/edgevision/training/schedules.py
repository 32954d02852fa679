"""Learning-rate schedules."""

from __future__ import annotations

from collections.abc import Sequence


def warmup_step_lr(
    epoch: float, base_lr: float, warmup_epochs: float, milestones: Sequence[int], gamma: float = 0.1
) -> float:
    """Linear warm-up from ``base_lr / 10`` over ``warmup_epochs``, then ``base_lr`` times
    ``gamma`` for every milestone (in epochs) passed. ``epoch`` may be fractional."""
    if epoch < warmup_epochs:
        return base_lr * (0.1 + 0.9 * epoch / warmup_epochs)
    return base_lr * gamma ** sum(epoch >= m for m in milestones)
