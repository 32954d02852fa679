"""MobileNetV2's inverted residual block with a linear bottleneck (Sandler et al., CVPR 2018,
Sec. 3.3 and Table 1), shared by MobileNetV2, SSDLite and MobileFaceNet."""

from __future__ import annotations

import torch
from torch import nn

from edgevision.layers.conv_bn import ConvBNAct


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never more than 10% below it.

    The channel rounding of the reference (TensorFlow and torchvision) MobileNets, so widths
    other than 1.0 give the same layer sizes as their checkpoints.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class InvertedResidual(nn.Module):
    """Expansion 1x1 conv + act, depthwise 3x3 conv + act, linear 1x1 projection (Table 1).

    The input is added back when ``stride == 1`` and ``in_channels == out_channels``. With
    ``expand_ratio == 1`` there is no expansion conv (the first block of MobileNetV2).

    Children follow torchvision's ``InvertedResidual`` (``conv.0`` ... ``conv.3``), so its
    MobileNetV2 checkpoints load with ``strict=True``.

    Shape: ``(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        activation: type[nn.Module] = nn.ReLU6,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation=activation))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden, activation=activation),
            # Linear bottleneck: no activation after the projection (Sec. 3.2).
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)
