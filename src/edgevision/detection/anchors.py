"""Anchor (prior box) generation for single-shot detectors, with anchor densification
(FaceBoxes, Sec. 3.3).

A level of the feature pyramid has a stride and a list of anchor shapes, each ``(width, height)``
pixels with a *density* ``n``: the anchor is tiled ``n x n`` times per cell so that small anchors
are as dense on the image as large ones. FaceBoxes uses squares of 32 (n=4), 64 (n=2), 128 on
stride 32; 256 on 64; 512 on 128, placed as FaceBoxes.PyTorch places them (``"corner"`` offsets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from edgevision.errors import ConfigError

# Where the n tiles of a densified anchor sit along one axis of a cell, in cells.
DENSIFY_OFFSETS = ("centred", "corner")


@dataclass(frozen=True)
class AnchorShape:
    """One anchor shape: ``width`` x ``height`` pixels, tiled ``density`` x ``density`` per cell."""

    width: float
    height: float
    density: int = 1

    def __post_init__(self) -> None:
        if not (self.width > 0 and self.height > 0 and math.isfinite(self.width * self.height)):
            raise ConfigError(f"an anchor needs a positive finite width and height, got {self}")
        if self.density < 1:
            raise ConfigError(f"an anchor's density must be 1 or more, got {self.density}")


def square(size: float, density: int = 1) -> AnchorShape:
    """A square anchor of ``size`` pixels (face detectors' usual shape)."""
    return AnchorShape(size, size, density)


@dataclass(frozen=True)
class AnchorLevel:
    """One detection layer: its stride (pixels), its anchor shapes, and where densified tiles sit.

    Attributes:
        stride: pixels of input per feature-map cell.
        shapes: the anchors of every cell, in the order the head predicts them.
        offsets: ``"centred"``: the ``n`` tiles of a densified anchor at ``(k + 0.5) / n`` cells;
            ``"corner"``: at ``k / n`` (FaceBoxes.PyTorch's PriorBox, which the reference weights
            were trained with), an undensified anchor at the cell centre in both.
    """

    stride: int
    shapes: tuple[AnchorShape, ...]
    offsets: str = "centred"

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ConfigError(f"an anchor level's stride must be 1 or more, got {self.stride}")
        if self.offsets not in DENSIFY_OFFSETS:
            raise ConfigError(f"anchor offsets must be one of {DENSIFY_OFFSETS}, got {self.offsets!r}")

    @property
    def anchors_per_cell(self) -> int:
        return sum(shape.density * shape.density for shape in self.shapes)


def densified_offsets(density: int, offsets: str = "centred") -> list[float]:
    """Centre offsets, in cells, of an anchor tiled ``density`` times along one axis (see
    :class:`AnchorLevel`)."""
    if density == 1:
        return [0.5]
    if offsets == "corner":
        return [k / density for k in range(density)]
    return [(k + 0.5) / density for k in range(density)]


def feature_map_size(image_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(rows, cols)`` of a stride-``stride`` map for an ``(H, W)`` image: ``ceil(H / stride)``."""
    return math.ceil(image_size[0] / stride), math.ceil(image_size[1] / stride)


@lru_cache(maxsize=16)  # a video has one input size, WIDER val many; the anchors are read only
def generate_anchors(levels: tuple[AnchorLevel, ...], image_size: tuple[int, int]) -> torch.Tensor:
    """All anchors of an ``(H, W)`` image as ``(A, 4)`` float32 ``(cx, cy, w, h)`` pixels.

    The order matches a head that predicts ``anchors_per_cell`` boxes per cell with its output
    permuted to ``(B, H, W, C)`` and flattened: level, row, column, shape, then the densified
    ``(dy, dx)`` grid row-major. The result is cached: do not modify it in place.
    """
    per_level = []
    for level in levels:
        rows, cols = feature_map_size(image_size, level.stride)
        cell = []
        for shape in level.shapes:
            offsets = torch.tensor(densified_offsets(shape.density, level.offsets), dtype=torch.float64)
            dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
            count = dx.numel()
            widths = torch.full((count,), float(shape.width), dtype=torch.float64)
            heights = torch.full((count,), float(shape.height), dtype=torch.float64)
            cell.append(torch.stack([dx.flatten(), dy.flatten(), widths, heights], dim=1))
        cell_anchors = torch.cat(cell)  # (K, 4): offsets in cells, size in px
        ys, xs = torch.meshgrid(
            torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij"
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=1)  # (rows*cols, 2)
        centres = (grid[:, None, :] + cell_anchors[None, :, :2]) * level.stride
        sizes = cell_anchors[None, :, 2:].expand(grid.shape[0], -1, -1)
        per_level.append(torch.cat([centres, sizes], dim=2).reshape(-1, 4))
    return torch.cat(per_level).float()
