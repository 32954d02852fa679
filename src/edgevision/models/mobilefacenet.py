"""MobileFaceNet: a face-verification embedding network (Chen et al., CCBR 2018).

MobileNetV2's bottlenecks with PReLU (Sec. 3.2), Table 1 walked as data, and a global depthwise
convolution (GDConv, Sec. 3.1) in place of global average pooling: a linear 7x7 depthwise conv
that weights each position of the 7x7 map differently, then a linear 1x1 conv to a 128-d
embedding with BN after. 0.99M parameters and 221M MAdds at 112x112 (Sec. 4).

Two smaller variants (Sec. 4.2): MobileFaceNet-M takes 112x96 faces and drops the linear 1x1
after GDConv (its embedding is GDConv's 512-d output); MobileFaceNet-S further drops the 1x1 conv
before GDConv (GDConv then spans the 128 channels of the last bottleneck: a 128-d embedding).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from edgevision.data.preprocessing import FACE_RGB
from edgevision.layers.conv_bn import ConvBNAct
from edgevision.layers.inverted_residual import InvertedResidual
from edgevision.models._registry import RECOGNITION, register_model

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

    embedding_size: int | None = 128  # linear conv1x1 after GDConv (Table 1); None: none (-M, -S)
    stem_channels: int = 64  # conv3x3 s2, then depthwise conv3x3 (Table 1)
    bottleneck_setting: tuple[tuple[int, int, int, int], ...] = BOTTLENECK_SETTING
    last_channels: int | None = 512  # conv1x1 before GDConv (Table 1); None: none (-S)
    # (H, W) of the aligned faces: 112x112 (Table 1), 112x96 for -M and -S (Sec. 4.2). GDConv's
    # kernel is the final map, input / 16, so the network takes this size only.
    input_size: tuple[int, int] = (112, 112)


# The variants of Sec. 4.2 as config overrides.
MOBILEFACENET_M = MobileFaceNetConfig(input_size=(112, 96), embedding_size=None)
MOBILEFACENET_S = MobileFaceNetConfig(input_size=(112, 96), embedding_size=None, last_channels=None)


class MobileFaceNet(nn.Module):
    """MobileFaceNet embedding network.

    Shape: ``(B, 3, H, W)`` float32 aligned face crops, ``(H, W) = config.input_size`` ->
    ``(B, D)`` embeddings, ``D = embedding_size`` (128), or GDConv's channels when there is no
    final 1x1 (512 for -M, 128 for -S). Not L2-normalised; the ArcFace loss and the verification
    code normalise. The input size is fixed: GDConv spans the whole final map.
    """

    input_preprocessing = FACE_RGB

    def __init__(self, config: MobileFaceNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MobileFaceNetConfig()
        if len(cfg.input_size) != 2 or any(side <= 0 or side % 16 for side in cfg.input_size):
            raise ValueError(f"input_size must be (H, W), each a multiple of 16, got {cfg.input_size}")
        self.fixed_input_size = self.default_input_size = tuple(cfg.input_size)
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
        if cfg.last_channels is not None:
            layers.append(ConvBNAct(c, cfg.last_channels, 1, activation=nn.PReLU))
            c = cfg.last_channels
        self.features = nn.Sequential(*layers)
        final = (cfg.input_size[0] // 16, cfg.input_size[1] // 16)
        # Linear GDConv (Sec. 3.1) and linear 1x1 to the embedding, each followed by BN.
        self.gdconv = ConvBNAct(c, c, final, groups=c, activation=None, padding=0)
        self.embedding = (
            nn.Identity()
            if cfg.embedding_size is None
            else ConvBNAct(c, cfg.embedding_size, 1, activation=None)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H/16, W/16)``: ``(B, 512, 7, 7)`` for MobileFaceNet at 112x112."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H/16, W/16) -> (B, D)``; the GDConv needs the valid (unpadded) final map."""
        return self.embedding(self.gdconv(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    "mobilefacenet", task=RECOGNITION, weights="mobilefacenet_orl.pth", recipe="face_embedding", default=True
)
def mobilefacenet(**overrides: Any) -> MobileFaceNet:
    """MobileFaceNet with :class:`MobileFaceNetConfig` fields overridden by keyword."""
    return MobileFaceNet(replace(MobileFaceNetConfig(), **overrides))


@register_model("mobilefacenet_m")
def mobilefacenet_m(**overrides: Any) -> MobileFaceNet:
    """MobileFaceNet-M (Sec. 4.2): 112x96 input, no linear 1x1 after GDConv."""
    return MobileFaceNet(replace(MOBILEFACENET_M, **overrides))


@register_model("mobilefacenet_s")
def mobilefacenet_s(**overrides: Any) -> MobileFaceNet:
    """MobileFaceNet-S (Sec. 4.2): MobileFaceNet-M without the 1x1 conv before GDConv."""
    return MobileFaceNet(replace(MOBILEFACENET_S, **overrides))
