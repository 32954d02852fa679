"""MobileNetV2: inverted residuals and linear bottlenecks (Sandler et al., CVPR 2018).

The body is Table 2 of the paper walked as data; at width 1.0 and 224x224 it has 3,504,872
parameters and 300M multiply-adds (Table 4). Module names follow torchvision's ``mobilenet_v2``
(``features.N.conv...``, ``classifier.1``), so its ImageNet checkpoint loads with ``strict=True``
through :func:`edgevision.models.weights.load_weights` with no key mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from edgevision.data.preprocessing import IMAGENET_RGB
from edgevision.layers.conv_bn import ConvBNAct
from edgevision.layers.inverted_residual import InvertedResidual, make_divisible
from edgevision.layers.pooling import global_avg_pool
from edgevision.models._registry import register_model

# Table 2: expansion factor t, output channels c, repeats n, stride of the first repeat s.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


@dataclass(frozen=True)
class MobileNetV2Config:
    """MobileNetV2 hyper-parameters; defaults are the paper's ImageNet model."""

    num_classes: int = 1000  # ImageNet (Sec. 6.1)
    width_mult: float = 1.0  # width multiplier; the paper sweeps 0.35 to 1.4 (Sec. 6.1, Fig. 5)
    round_nearest: int = 8  # channels rounded to multiples of 8, as the reference code
    dropout: float = 0.2  # before the classifier, as torchvision's recipe
    stem_channels: int = 32  # first conv2d (Table 2)
    last_channels: int = 1280  # final 1x1 conv, not shrunk for width < 1 (Sec. 6.1)
    inverted_residual_setting: tuple[tuple[int, int, int, int], ...] = INVERTED_RESIDUAL_SETTING
    # Strides whose last feature map ``forward_features(x, multi_scale=True)`` returns.
    feature_strides: tuple[int, ...] = (8, 16, 32)


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier.

    Shape: ``(B, 3, H, W)`` float32 RGB in [0, 1] normalised by the ImageNet mean/std ->
    ``(B, num_classes)`` logits. Any ``H, W`` works; 224x224 is the paper's.
    """

    default_input_size = (224, 224)  # (H, W): ImageNet, the paper's Table 4
    input_preprocessing = IMAGENET_RGB

    def __init__(self, config: MobileNetV2Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MobileNetV2Config()
        in_channels = make_divisible(cfg.stem_channels * cfg.width_mult, cfg.round_nearest)
        last_channels = make_divisible(cfg.last_channels * max(1.0, cfg.width_mult), cfg.round_nearest)
        layers: list[nn.Module] = [ConvBNAct(3, in_channels, 3, stride=2, activation=nn.ReLU6)]
        strides = [2]
        for t, c, n, s in cfg.inverted_residual_setting:
            out_channels = make_divisible(c * cfg.width_mult, cfg.round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                layers.append(InvertedResidual(in_channels, out_channels, stride, expand_ratio=t))
                strides.append(strides[-1] * stride)
                in_channels = out_channels
        layers.append(ConvBNAct(in_channels, last_channels, 1, activation=nn.ReLU6))
        strides.append(strides[-1])
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(last_channels, cfg.num_classes))
        # The last layer of ``features`` at each of ``feature_strides``.
        self.feature_indices = tuple(
            max(i for i, stride in enumerate(strides) if stride == wanted) for wanted in cfg.feature_strides
        )
        self.feature_channels = tuple(self.features[i].out_channels for i in self.feature_indices)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so training from scratch matches its recipe.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(
        self, x: torch.Tensor, multi_scale: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """``(B, 1280, H/32, W/32)``; with ``multi_scale`` the maps at ``feature_strides``
        (8, 16, 32: ``(B, 32|96|1280, H/s, W/s)`` at width 1.0) for detectors."""
        if not multi_scale:
            return self.features(x)
        maps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.feature_indices:
                maps.append(x)
            if i == self.feature_indices[-1]:
                break
        return maps

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(global_avg_pool(x))

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The ImageNet-1k class names, index by index, when the model has 1000 classes (else
        ``None``): those of torchvision's checkpoint, which loads here as it is. Read from
        torchvision's weight metadata (nothing is downloaded), imported on first use."""
        if self.config.num_classes != 1000:
            return None
        from torchvision.models import MobileNet_V2_Weights

        return tuple(MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("mobilenet_v2")
def mobilenet_v2(**overrides: Any) -> MobileNetV2:
    """MobileNetV2 with :class:`MobileNetV2Config` fields overridden by keyword."""
    return MobileNetV2(replace(MobileNetV2Config(), **overrides))
