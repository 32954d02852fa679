"""Running per-level prediction heads of a single-shot detector (SSD, FaceBoxes, SSDLite)."""

from __future__ import annotations

import torch
from torch import nn


def apply_head(heads: nn.ModuleList, sources: list[torch.Tensor], width: int) -> torch.Tensor:
    """Apply each level's head to its ``(B, C_l, H_l, W_l)`` source (``k_l * width`` output
    channels: ``width`` values for each of the cell's ``k_l`` anchors) and flatten in anchor order
    (level, row, column, anchor): ``(B, A, width)``."""
    batch = sources[0].shape[0]
    return torch.cat(
        [head(s).permute(0, 2, 3, 1).reshape(batch, -1, width) for head, s in zip(heads, sources)], 1
    )


def apply_heads(
    loc_heads: nn.ModuleList, conf_heads: nn.ModuleList, sources: list[torch.Tensor], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The box and class heads (:func:`apply_head`): ``loc (B, A, 4)`` offsets and
    ``conf (B, A, num_classes)`` logits."""
    return apply_head(loc_heads, sources, 4), apply_head(conf_heads, sources, num_classes)
