"""Concatenated ReLU (Shang et al., 2016), as FaceBoxes' RDCL uses it (FaceBoxes Sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNCReLU(nn.Module):
    """``relu(cat(y, -y))`` with ``y = bn(conv(x))``: doubles the channels for the cost of half.

    Shape: ``(B, C_in, H, W) -> (B, 2 * out_channels, H', W')``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(torch.cat([y, -y], dim=1))
