"""Learning-rate schedules against hand values."""

from __future__ import annotations

import pytest

from edgevision.training.schedules import warmup_step_lr


def test_warmup_step_lr_hand_values() -> None:
    def lr(epoch: float) -> float:
        return warmup_step_lr(epoch, base_lr=0.02, warmup_epochs=4, milestones=[10, 20], gamma=0.5)

    assert lr(0) == pytest.approx(0.002)  # base / 10
    assert lr(2) == pytest.approx(0.011)  # halfway: 0.1 + 0.9 / 2 = 0.55 of base
    assert lr(4) == pytest.approx(0.02)  # warm-up over
    assert lr(9.5) == pytest.approx(0.02)
    assert lr(10) == pytest.approx(0.01)  # one milestone passed: base * gamma
    assert lr(19) == pytest.approx(0.01)
    assert lr(20) == pytest.approx(0.005)  # two: base * gamma**2
    assert lr(300) == pytest.approx(0.005)
