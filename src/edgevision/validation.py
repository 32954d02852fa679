"""Checks of numeric options, shared by the CLI and the objects it configures."""

from __future__ import annotations

import math

from edgevision.errors import ConfigError


def check_number(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    """``value`` as a float when it is finite and in ``[low, high]`` (an end excluded when
    ``low_open`` / ``high_open``); else a :class:`ConfigError` naming ``name`` and the range.

    NaN fails every comparison, so it is refused here explicitly rather than slipping past
    a ``value <= 0`` test.

    Example:
        >>> check_number("--threshold", 0.5, 0.0, 1.0)
        0.5
        >>> check_number("--scale", float("nan"), 0.0, 8.0, low_open=True)
        Traceback (most recent call last):
        ...
        edgevision.errors.ConfigError: --scale must be a finite number in (0, 8], got nan
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{name} must be a finite number in {interval}, got {value}")
    return float(value)


def check_integer(name: str, value: int, low: int, high: int | None = None) -> int:
    """``value`` when it is an int (not a bool, not a float such as ``2.0``) in ``[low, high]``
    (no upper end when ``high`` is None); else a :class:`ConfigError` naming ``name`` and the range.

    Example:
        >>> check_integer("population", 100, 2)
        100
        >>> check_integer("sample", 0, 1, 100)
        Traceback (most recent call last):
        ...
        edgevision.errors.ConfigError: sample must be an integer in [1, 100], got 0
    """
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok:
        ok = value >= low and (high is None or value <= high)
    if not ok:
        interval = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(
            f"{name} must be an integer {'in ' if high is not None else ''}{interval}, got {value!r}"
        )
    return value
