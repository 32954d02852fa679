"""Input checks shared by recon3d, so bad input fails at the boundary in one line: numpy arrays
(rows of coordinates, faces, numbers, finiteness) and torch tensors (shape, finiteness)."""

from __future__ import annotations

import numpy as np
import torch

from edgevision.errors import ConfigError, ShapeError


def as_rows(name: str, value: object, columns: int) -> np.ndarray:
    """``value`` as a finite ``(N, columns)`` float64 array, else a one-line :class:`ShapeError`
    (wrong shape, not numbers) or :class:`ConfigError` (NaN or inf) naming ``name``."""
    array = as_numbers(name, value)
    if array.ndim != 2 or array.shape[1] != columns:
        raise ShapeError(f"{name} must be an (N, {columns}) array, got shape {array.shape}")
    return check_finite(name, array)


def as_faces(faces: object, vertex_count: int) -> np.ndarray:
    """``faces`` as an (F, 3) int64 array of vertex indices in ``[0, vertex_count)``, else a
    one-line :class:`ShapeError`."""
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise ShapeError(f"faces must be an (F, 3) integer array, got shape {faces.shape} of {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= vertex_count):
        raise ShapeError(f"faces index vertices 0..{vertex_count - 1}, found {faces.min()}..{faces.max()}")
    return faces.astype(np.int64)


def as_numbers(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array when it holds numbers (not booleans, not strings), else a
    :class:`ShapeError` naming ``name``."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise ShapeError(f"{name} must be a rectangular array of numbers") from None
    if array.dtype.kind not in "iuf":
        raise ShapeError(f"{name} must hold numbers, got {array.dtype} values")
    return array.astype(np.float64)


def check_finite(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` when it has no NaN or inf, else a :class:`ConfigError` naming ``name``."""
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} must be finite, found NaN or inf")
    return array


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
