"""Anchor (prior box) generation with FaceBoxes' anchor densification (FaceBoxes, Sec. 3.3).

A level of the feature pyramid has a stride and a list of square anchor sizes; each size has a
*density* ``n``: the anchor is tiled ``n x n`` times per cell so that small anchors are as dense on
the image as large ones. FaceBoxes uses sizes 32 (n=4), 64 (n=2), 128 on stride 32; 256 on 64;
512 on 128.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AnchorLevel:
    """One detection layer: its stride (pixels) and anchor ``(size_px, density)`` pairs."""

    stride: int
    sizes: tuple[tuple[int, int], ...]

    @property
    def anchors_per_cell(self) -> int:
        return sum(density * density for _, density in self.sizes)


def densified_offsets(density: int) -> list[float]:
    """Centre offsets, in cells, of an anchor tiled ``density`` times along one axis.

    Follows FaceBoxes.PyTorch's PriorBox (the code the reference weights were trained with): a
    densified anchor starts at the cell's corner, ``k / n`` for ``k < n``, and an anchor that is not
    densified sits at the cell centre. The reference weights' outputs depend on this placement.
    """
    if density == 1:
        return [0.5]
    return [k / density for k in range(density)]


def feature_map_size(image_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(rows, cols)`` of a stride-``stride`` map for an ``(H, W)`` image: ``ceil(H / stride)``."""
    return math.ceil(image_size[0] / stride), math.ceil(image_size[1] / stride)


def generate_anchors(levels: tuple[AnchorLevel, ...], image_size: tuple[int, int]) -> torch.Tensor:
    """All anchors of an ``(H, W)`` image as ``(A, 4)`` float32 ``(cx, cy, w, h)`` pixels.

    The order matches a head that predicts ``anchors_per_cell`` boxes per cell with its output
    permuted to ``(B, H, W, C)`` and flattened: level, row, column, size, then the densified
    ``(dy, dx)`` grid row-major.
    """
    per_level = []
    for level in levels:
        rows, cols = feature_map_size(image_size, level.stride)
        cell = []
        for size, density in level.sizes:
            offsets = torch.tensor(densified_offsets(density), dtype=torch.float64)
            dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
            size_col = torch.full((dx.numel(),), float(size), dtype=torch.float64)
            cell.append(torch.stack([dx.flatten(), dy.flatten(), size_col, size_col], dim=1))
        cell_anchors = torch.cat(cell)  # (K, 4): offsets in cells, size in px
        ys, xs = torch.meshgrid(
            torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij"
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=1)  # (rows*cols, 2)
        centres = (grid[:, None, :] + cell_anchors[None, :, :2]) * level.stride
        sizes = cell_anchors[None, :, 2:].expand(grid.shape[0], -1, -1)
        per_level.append(torch.cat([centres, sizes], dim=2).reshape(-1, 4))
    return torch.cat(per_level).float()
