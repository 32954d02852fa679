"""Input checks shared by recon3d: a tensor's shape and finiteness, one-line errors."""

from __future__ import annotations

import torch

from edgevision.errors import ConfigError, ShapeError


def check_tensor(name: str, value: torch.Tensor, shape: tuple[int | None, ...]) -> torch.Tensor:
    """``value`` when it is a floating tensor of ``shape`` (``None``: any size) with finite
    entries; else a :class:`ShapeError` or :class:`ConfigError` naming ``name``."""
    expected = "(" + ", ".join("N" if size is None else str(size) for size in shape) + ")"
    if not isinstance(value, torch.Tensor):
        raise ShapeError(f"{name} must be a tensor of shape {expected}, got {type(value).__name__}")
    if value.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, value.shape)):
        raise ShapeError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if not bool(torch.isfinite(value).all()):
        raise ConfigError(f"{name} has NaN or inf entries")
    return value
