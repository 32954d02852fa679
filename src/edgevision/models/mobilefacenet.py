"""MobileFaceNet: a face-verification embedding network (Chen et al., CCBR 2018).

MobileNetV2's bottlenecks with PReLU (Sec. 3.2), Table 1 walked as data, and a global depthwise
convolution (GDConv, Sec. 3.1) in place of global average pooling: a linear 7x7 depthwise conv
that weights each position of the 7x7 map differently, then a linear 1x1 conv to a 128-d
embedding with BN after. 0.99M parameters and 221M MAdds at 112x112 (Sec. 4).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from edgevision.layers.conv_bn import ConvBNAct
from edgevision.layers.inverted_residual import InvertedResidual
from edgevision.models._registry import register_model

# Table 1, bottleneck rows: expansion t, output channels c, repeats n, stride of the first s.
BOTTLENECK_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)


@dataclass(frozen=True)
class MobileFaceNetConfig:
    """MobileFaceNet hyper-parameters; defaults are the paper's (Table 1)."""

    embedding_size: int = 128  # linear conv1x1 output (Table 1)
    stem_channels: int = 64  # conv3x3 s2, then depthwise conv3x3 (Table 1)
    bottleneck_setting: tuple[tuple[int, int, int, int], ...] = BOTTLENECK_SETTING
    last_channels: int = 512  # conv1x1 before GDConv (Table 1)
    input_size: int = 112  # 112x112 aligned faces; GDConv's 7x7 kernel needs exactly this (Sec. 4)


class MobileFaceNet(nn.Module):
    """MobileFaceNet embedding network.

    Shape: ``(B, 3, 112, 112)`` float32 aligned face crops -> ``(B, 128)`` embeddings (not
    L2-normalised; the ArcFace loss and the verification code normalise). The input size is
    fixed: GDConv spans the whole 7x7 map of a 112x112 input.
    """

    default_input_size = (112, 112)  # (H, W): aligned face crops (Sec. 3)

    def __init__(self, config: MobileFaceNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MobileFaceNetConfig()
        if cfg.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {cfg.input_size}")
        self.fixed_input_size = (cfg.input_size, cfg.input_size)
        c = cfg.stem_channels
        layers: list[nn.Module] = [
            ConvBNAct(3, c, 3, stride=2, activation=nn.PReLU),
            ConvBNAct(c, c, 3, groups=c, activation=nn.PReLU),
        ]
        for t, out, n, s in cfg.bottleneck_setting:
            for i in range(n):
                layers.append(
                    InvertedResidual(c, out, s if i == 0 else 1, expand_ratio=t, activation=nn.PReLU)
                )
                c = out
        layers.append(ConvBNAct(c, cfg.last_channels, 1, activation=nn.PReLU))
        self.features = nn.Sequential(*layers)
        final = cfg.input_size // 16
        # Linear GDConv (Sec. 3.1) and linear 1x1 to the embedding, each followed by BN.
        self.gdconv = ConvBNAct(
            cfg.last_channels, cfg.last_channels, final, groups=cfg.last_channels, activation=None, padding=0
        )
        self.embedding = ConvBNAct(cfg.last_channels, cfg.embedding_size, 1, activation=None)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 512, 7, 7)`` for a 112x112 input."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 512, 7, 7) -> (B, 128)``; the GDConv needs valid (unpadded) 7x7."""
        return self.embedding(self.gdconv(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("mobilefacenet")
def mobilefacenet(**overrides: Any) -> MobileFaceNet:
    """MobileFaceNet with :class:`MobileFaceNetConfig` fields overridden by keyword."""
    return MobileFaceNet(replace(MobileFaceNetConfig(), **overrides))
