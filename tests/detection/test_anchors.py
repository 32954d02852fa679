"""Anchors against an independent re-implementation of FaceBoxes.PyTorch's ``PriorBox``
(``layers/functions/prior_box.py``), the code the reference weights were trained with."""

from __future__ import annotations

import math
from itertools import product

import pytest
import torch

from edgevision.detection.anchors import (
    AnchorLevel,
    AnchorShape,
    densified_offsets,
    feature_map_size,
    generate_anchors,
    square,
)
from edgevision.errors import ConfigError
from edgevision.models.faceboxes import FaceBoxesConfig

MIN_SIZES = [[32, 64, 128], [256], [512]]
STEPS = [32, 64, 128]


def reference_prior_box(image_size: tuple[int, int]) -> torch.Tensor:
    """PriorBox.forward in test phase: ``(A, 4)`` normalised ``(cx, cy, w, h)``, float64, no clip."""
    height, width = image_size
    mean: list[float] = []
    for k, step in enumerate(STEPS):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        for i, j in product(range(rows), range(cols)):
            for min_size in MIN_SIZES[k]:
                s_kx, s_ky = min_size / width, min_size / height
                if min_size == 32:
                    offsets = [0.0, 0.25, 0.5, 0.75]
                elif min_size == 64:
                    offsets = [0.0, 0.5]
                else:
                    offsets = [0.5]
                dense_cx = [(j + o) * step / width for o in offsets]
                dense_cy = [(i + o) * step / height for o in offsets]
                for cy, cx in product(dense_cy, dense_cx):
                    mean += [cx, cy, s_kx, s_ky]
    return torch.tensor(mean, dtype=torch.float64).view(-1, 4)


@pytest.mark.parametrize("image_size", [(480, 640), (333, 517), (1024, 1024), (32, 32)])
def test_generate_anchors_equals_reference_prior_box(image_size: tuple[int, int]) -> None:
    height, width = image_size
    ours = generate_anchors(FaceBoxesConfig().anchor_levels, image_size)
    reference = reference_prior_box(image_size) * torch.tensor([width, height, width, height])
    assert ours.dtype == torch.float32
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours.double(), reference, rtol=0, atol=1e-3)


def test_anchor_count_for_480x640() -> None:
    anchors = generate_anchors(FaceBoxesConfig().anchor_levels, (480, 640))
    # 15 x 20 cells x 21 at stride 32, 8 x 10 at 64, 4 x 5 at 128.
    assert anchors.shape == (15 * 20 * 21 + 8 * 10 + 4 * 5, 4) == (6400, 4)


def test_first_stride32_cell_layout() -> None:
    """The 21 anchors of cell (0, 0): 16 of 32 px on a 4x4 grid from the corner, 4 of 64 px on a
    2x2 grid, one 128 px at the centre; row-major (y outer, x inner) within each size."""
    levels = FaceBoxesConfig().anchor_levels
    assert levels[0].anchors_per_cell == 21
    assert [level.anchors_per_cell for level in levels] == [21, 1, 1]
    cell = generate_anchors(levels, (32, 32))[:21]
    expected = [[x, y, 32, 32] for y in (0, 8, 16, 24) for x in (0, 8, 16, 24)]
    expected += [[x, y, 64, 64] for y in (0, 16) for x in (0, 16)]
    expected += [[16, 16, 128, 128]]
    torch.testing.assert_close(cell, torch.tensor(expected, dtype=torch.float32))


def test_odd_size_uses_ceil_feature_maps() -> None:
    assert feature_map_size((333, 517), 32) == (11, 17)
    assert feature_map_size((333, 517), 64) == (6, 9)
    assert feature_map_size((333, 517), 128) == (3, 5)
    assert densified_offsets(1, "corner") == [0.5]
    assert densified_offsets(2, "corner") == [0.0, 0.5]
    assert densified_offsets(4, "corner") == [0.0, 0.25, 0.5, 0.75]
    assert densified_offsets(1) == [0.5]
    assert densified_offsets(2) == [0.25, 0.75]
    assert densified_offsets(4) == [0.125, 0.375, 0.625, 0.875]


def test_custom_level_order() -> None:
    """Level, row, column, size, then (dy, dx): the order a permuted head output has."""
    levels = (AnchorLevel(stride=10, shapes=(square(5, 2), square(20)), offsets="corner"),)
    anchors = generate_anchors(levels, (10, 20))  # one row, two columns
    expected = [
        [0, 0, 5, 5], [5, 0, 5, 5], [0, 5, 5, 5], [5, 5, 5, 5], [5, 5, 20, 20],
        [10, 0, 5, 5], [15, 0, 5, 5], [10, 5, 5, 5], [15, 5, 5, 5], [15, 5, 20, 20],
    ]  # fmt: skip
    torch.testing.assert_close(anchors, torch.tensor(expected, dtype=torch.float32))


def test_rectangular_centred_anchors_by_hand() -> None:
    """(w, h) shapes and centred densification: a 4 x 8 anchor tiled 2 x 2 in a 10 px cell sits
    at 2.5 and 7.5 px on each axis; a 30 x 12 one at the centre."""
    levels = (AnchorLevel(stride=10, shapes=(AnchorShape(4, 8, density=2), AnchorShape(30, 12))),)
    anchors = generate_anchors(levels, (10, 10))
    expected = [[2.5, 2.5, 4, 8], [7.5, 2.5, 4, 8], [2.5, 7.5, 4, 8], [7.5, 7.5, 4, 8], [5, 5, 30, 12]]
    torch.testing.assert_close(anchors, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize(
    "make",
    [
        lambda: AnchorShape(0, 8),
        lambda: AnchorShape(4, float("nan")),
        lambda: AnchorShape(4, 4, density=0),
        lambda: AnchorLevel(stride=0, shapes=(square(8),)),
        lambda: AnchorLevel(stride=8, shapes=(square(8),), offsets="middle"),
    ],
)
def test_bad_anchor_settings_are_refused(make) -> None:
    with pytest.raises(ConfigError):
        make()
