"""Conv + BatchNorm (+ activation) blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    """``relu(bn(conv(x)))`` with a bias-free conv; ``(B, C_in, H, W) -> (B, C_out, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ConvBNAct(nn.Sequential):
    """``act(bn(conv(x)))`` with a bias-free conv; ``activation=None`` is linear.

    ``padding`` defaults to ``(kernel_size - 1) // 2`` ("same" for odd kernels at stride 1); a
    rectangular ``(kH, kW)`` kernel needs ``padding`` given.

    A ``Sequential`` whose children are named ``0`` (conv), ``1`` (bn), ``2`` (activation), as
    torchvision's ``Conv2dNormActivation``, so torchvision checkpoints (MobileNetV2) load as they
    are. ``activation`` is built with ``num_parameters=out_channels`` when it is ``nn.PReLU``
    (one slope per channel, as MobileFaceNet), else with no arguments.

    Shape: ``(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))`` for odd kernels
    and the default padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = nn.ReLU,
        padding: int | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2 if padding is None else padding,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is nn.PReLU:
            layers.append(nn.PReLU(out_channels))
        elif activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.out_channels = out_channels
