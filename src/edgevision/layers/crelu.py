"""Concatenated ReLU (Shang et al., 2016), as FaceBoxes' RDCL uses it (FaceBoxes Sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgevision.layers.conv_bn import ConvBNReLU


class ConvBNCReLU(ConvBNReLU):
    """``relu(cat(y, -y))`` with ``y = bn(conv(x))``: doubles the channels for the cost of half.

    Shape: ``(B, C_in, H, W) -> (B, 2 * out_channels, H', W')``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(torch.cat([y, -y], dim=1))
