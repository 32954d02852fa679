"""The shapes a GPU engine's optimisation profile spans (TensorRT builds one kernel set per profile).

Kept apart from :mod:`.tensorrt` so that it is importable (and tested) without TensorRT.
"""

from __future__ import annotations

MAX_BATCH = 8
MIN_SIDE = 32  # pixels: the smallest H or W the profile takes
MAX_SIDE = 2048  # pixels: the largest (WIDER FACE images are at most 1024 wide)


def profile_shapes(
    shape: tuple[int, ...], optimal: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) of an input whose model ``shape`` has ``-1`` for dynamic dimensions: the batch
    (axis 0) from 1 to :data:`MAX_BATCH`, any other from :data:`MIN_SIDE` to :data:`MAX_SIDE` (or
    to ``optimal`` if larger), and ``optimal`` itself as the shape to tune for."""
    low, high = [], []
    for axis, (dim, best) in enumerate(zip(shape, optimal, strict=True)):
        if dim >= 0:
            low.append(dim)
            high.append(dim)
        elif axis == 0:
            low.append(1)
            high.append(max(MAX_BATCH, best))
        else:
            low.append(min(MIN_SIDE, best))
            high.append(max(MAX_SIDE, best))
    return tuple(low), tuple(optimal), tuple(high)
