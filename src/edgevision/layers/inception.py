"""FaceBoxes' Inception module (FaceBoxes Sec. 3.2, Fig. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgevision.layers.conv_bn import ConvBNReLU


class FaceBoxesInception(nn.Module):
    """Four branches of 32 channels each: 1x1; avg-pool 3x3 + 1x1; 1x1 + 3x3; 1x1 + 3x3 + 3x3.

    Shape: ``(B, 128, H, W) -> (B, 128, H, W)``. Attribute names follow FaceBoxes.PyTorch so that
    its checkpoints load with ``strict=True``.
    """

    def __init__(self, in_channels: int = 128, branch_channels: int = 32, reduce_channels: int = 24) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, branch_channels, 1)
        self.branch1x1_2 = ConvBNReLU(in_channels, branch_channels, 1)
        self.branch3x3_reduce = ConvBNReLU(in_channels, reduce_channels, 1)
        self.branch3x3 = ConvBNReLU(reduce_channels, branch_channels, 3)
        self.branch3x3_reduce_2 = ConvBNReLU(in_channels, reduce_channels, 1)
        self.branch3x3_2 = ConvBNReLU(reduce_channels, branch_channels, 3)
        self.branch3x3_3 = ConvBNReLU(branch_channels, branch_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch1x1_2(pooled),
                self.branch3x3(self.branch3x3_reduce(x)),
                self.branch3x3_3(self.branch3x3_2(self.branch3x3_reduce_2(x))),
            ],
            dim=1,
        )
