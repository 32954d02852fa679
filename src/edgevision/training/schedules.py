"""Learning-rate schedules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial

import torch
from torch import nn

from edgevision.training.config import TrainConfig


def warmup_step_lr(
    epoch: float, base_lr: float, warmup_epochs: float, milestones: Sequence[int], gamma: float = 0.1
) -> float:
    """Linear warm-up from ``base_lr / 10`` over ``warmup_epochs``, then ``base_lr`` times
    ``gamma`` for every milestone (in epochs) passed. ``epoch`` may be fractional."""
    if epoch < warmup_epochs:
        return base_lr * (0.1 + 0.9 * epoch / warmup_epochs)
    return base_lr * gamma ** sum(epoch >= m for m in milestones)


def sgd_warmup_steps(
    parameters: Iterable[nn.Parameter], config: TrainConfig
) -> tuple[torch.optim.SGD, Callable[[float], float]]:
    """SGD with ``config``'s momentum and weight decay, and its schedule: :func:`warmup_step_lr`
    from ``config.lr`` (warm-up epochs, milestones, gamma)."""
    optimizer = torch.optim.SGD(
        parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    schedule = partial(
        warmup_step_lr,
        base_lr=config.lr,
        warmup_epochs=config.warmup_epochs,
        milestones=config.milestones,
        gamma=config.gamma,
    )
    return optimizer, schedule
