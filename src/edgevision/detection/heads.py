"""Running per-level prediction heads of a single-shot detector (SSD, FaceBoxes, SSDLite)."""

from __future__ import annotations

import torch
from torch import nn


def apply_heads(
    loc_heads: nn.ModuleList, conf_heads: nn.ModuleList, sources: list[torch.Tensor], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply each level's heads to its ``(B, C_l, H_l, W_l)`` source and flatten in anchor order
    (level, row, column, anchor): ``loc (B, A, 4)`` offsets and ``conf (B, A, num_classes)``
    logits."""
    batch = sources[0].shape[0]
    loc = [head(s).permute(0, 2, 3, 1).reshape(batch, -1, 4) for head, s in zip(loc_heads, sources)]
    conf = [
        head(s).permute(0, 2, 3, 1).reshape(batch, -1, num_classes) for head, s in zip(conf_heads, sources)
    ]
    return torch.cat(loc, dim=1), torch.cat(conf, dim=1)
