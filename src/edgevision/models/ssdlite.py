"""SSDLite on MobileNetV2 (Sandler et al., CVPR 2018, Sec. 6.3).

SSDLite is SSD with every regular convolution in the prediction heads and the extra layers
replaced by a depthwise-separable one (depthwise 3x3 + BN + ReLU6, then 1x1). The two backbone
sources are the expansion output (the 1x1 expansion conv) of the first stride-32 block,
``features[14].conv[0]`` at stride 16 (576 channels), and the last 1280-channel layer at stride 32;
four extra layers of 512, 256, 256, 128 channels (1x1 reduce to half, depthwise 3x3 stride 2, 1x1)
follow, as the TensorFlow Object Detection API model the paper reports and torchvision's
``ssdlite.py``.

Which configuration reproduces the paper's numbers (all at 320x320, width 1.0, counted with
:mod:`edgevision.models.complexity`):
- Table 6, "MNet V2 + SSDLite", 4.3M parameters and 0.8B MAdds: the defaults,
  ``num_classes=81`` (COCO's 80 categories + background) and ``anchors_per_location=
  (3, 6, 6, 6, 6, 6)`` (the TF config's ``reduce_boxes_in_lowest_layer``), give 4,337,013
  parameters and 0.789B MAdds. (With the TF model's 91 classes: 4.50M / 0.804B; with 91 classes
  and 6 anchors everywhere, as torchvision's ssdlite320: 4.66M / 0.870B.)
- Table 5, heads and extra layers only (everything but the MobileNetV2 body), 80 classes
  (``num_classes=80``, same anchors): SSDLite 2.10M parameters (paper 2.1M) and 0.176B MAdds
  (paper 0.35B: not reproduced, and not reproducible together with Table 6: the MobileNetV2 body
  alone is 0.611B at 320, so Table 6's 0.8B total leaves ~0.19B for heads and extras, while
  0.35B would make the model ~0.96B; we follow Table 6), and ``separable=False`` (regular
  1x1 + 3x3 extras and 3x3 heads, i.e. SSD) 14.63M (paper 14.8M) and 1.245B MAdds (paper 1.25B).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from edgevision.detection.heads import apply_heads
from edgevision.layers.conv_bn import ConvBNAct
from edgevision.layers.inverted_residual import make_divisible
from edgevision.models._registry import register_model
from edgevision.models.mobilenetv2 import MobileNetV2, MobileNetV2Config


@dataclass(frozen=True)
class SSDLiteConfig:
    """SSDLite hyper-parameters; defaults are the paper's COCO model (Sec. 6.3, Table 6)."""

    num_classes: int = 81  # COCO's 80 categories + background (Sec. 6.3; the TF model uses 91)
    width_mult: float = 1.0  # backbone width multiplier (Sec. 6.1)
    # Anchors per location on the six sources; the TF model puts 3 on the stride-16 layer and
    # 6 (5 aspect ratios + 1 extra scale) elsewhere. torchvision's ssdlite320 uses 6 everywhere.
    anchors_per_location: tuple[int, ...] = (3, 6, 6, 6, 6, 6)
    extra_channels: tuple[int, ...] = (512, 256, 256, 128)  # extra feature layers (Sec. 6.3)
    # True: SSDLite (depthwise-separable heads and extras); False: regular SSD (Table 5).
    separable: bool = True
    input_size: int = 320  # the paper's input resolution (Table 6)
    c4_index: int = 14  # ``features`` index whose expansion output is the stride-16 source


def _head(in_channels: int, out_channels: int, separable: bool) -> nn.Module:
    """A prediction layer: depthwise 3x3 + BN + ReLU6, then 1x1 conv (SSDLite), or a 3x3 conv."""
    if separable:
        return nn.Sequential(
            ConvBNAct(in_channels, in_channels, 3, groups=in_channels, activation=nn.ReLU6),
            nn.Conv2d(in_channels, out_channels, 1),
        )
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def _extra(in_channels: int, out_channels: int, separable: bool) -> nn.Module:
    """An extra layer halving the resolution: 1x1 to half the channels, then a stride-2 3x3
    (depthwise + 1x1 in SSDLite, a regular conv in SSD)."""
    mid = out_channels // 2
    reduce = ConvBNAct(in_channels, mid, 1, activation=nn.ReLU6)
    if separable:
        return nn.Sequential(
            reduce,
            ConvBNAct(mid, mid, 3, stride=2, groups=mid, activation=nn.ReLU6),
            ConvBNAct(mid, out_channels, 1, activation=nn.ReLU6),
        )
    return nn.Sequential(reduce, ConvBNAct(mid, out_channels, 3, stride=2, activation=nn.ReLU6))


class SSDLite(nn.Module):
    """MobileNetV2-SSDLite detection network.

    Shape: ``(B, 3, H, W)`` float32 RGB normalised by the ImageNet mean/std -> ``loc (B, A, 4)``
    box offsets and ``conf (B, A, num_classes)`` logits (class 0 is background), ``A`` summed over
    the six sources of ``sum(h * w * anchors_per_location)``. 320x320 is the paper's input.
    """

    default_input_size = (320, 320)  # (H, W): the paper's COCO setting (Table 6)
    onnx_output_names = ("loc", "conf")  # what :func:`edgevision.deploy.export.export_onnx` names them

    def __init__(self, config: SSDLiteConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SSDLiteConfig()
        if len(cfg.anchors_per_location) != 2 + len(cfg.extra_channels):
            raise ValueError(
                f"anchors_per_location needs {2 + len(cfg.extra_channels)} entries (2 backbone sources "
                f"+ {len(cfg.extra_channels)} extra layers), got {len(cfg.anchors_per_location)}"
            )
        features = MobileNetV2(MobileNetV2Config(width_mult=cfg.width_mult)).features
        c4 = features[cfg.c4_index]
        if c4.use_residual or len(c4.conv) != 4:
            raise ValueError(f"features[{cfg.c4_index}] must be a non-residual expanding block")
        # Split at the expansion of the first stride-32 block, as torchvision's SSDLite.
        self.body = nn.ModuleList(
            [
                nn.Sequential(*features[: cfg.c4_index], c4.conv[0]),
                nn.Sequential(*c4.conv[1:], *features[cfg.c4_index + 1 :]),
            ]
        )
        channels = [c4.conv[0].out_channels, features[-1].out_channels]
        extras = []
        for out in cfg.extra_channels:
            out = make_divisible(out * cfg.width_mult, 8)
            extras.append(_extra(channels[-1], out, cfg.separable))
            channels.append(out)
        self.extras = nn.ModuleList(extras)
        self.loc = nn.ModuleList(
            _head(c, k * 4, cfg.separable) for c, k in zip(channels, cfg.anchors_per_location)
        )
        self.conf = nn.ModuleList(
            _head(c, k * cfg.num_classes, cfg.separable) for c, k in zip(channels, cfg.anchors_per_location)
        )
        self.source_channels = tuple(channels)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six sources at strides 16, 32, 64, 128, 256, 512 (sizes rounded up)."""
        sources = []
        for part in self.body:
            x = part(x)
            sources.append(x)
        for extra in self.extras:
            x = extra(x)
            sources.append(x)
        return sources

    def forward_head(self, sources: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``loc (B, A, 4)`` offsets and ``conf (B, A, num_classes)`` logits from the sources."""
        return apply_heads(self.loc, self.conf, sources, self.config.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_head(self.forward_features(x))


@register_model("ssdlite_mobilenet_v2")
def ssdlite_mobilenet_v2(**overrides: Any) -> SSDLite:
    """MobileNetV2-SSDLite with :class:`SSDLiteConfig` fields overridden by keyword."""
    return SSDLite(replace(SSDLiteConfig(), **overrides))
