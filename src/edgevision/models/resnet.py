"""ResNet-50/101 with deformable convolution in res5 (Dai et al., "Deformable Convolutional
Networks", ICCV 2017), built on torchvision's ResNet.

The paper's feature extractor (Sec. 2.3, "Deformable Convolution for Feature Extraction"): res5
(torchvision's ``layer4``) runs at stride 1 with every 3x3 conv dilated by 2, so the features come
out at stride 16 instead of 32, and the 3x3 convs of res5a, res5b and res5c are deformable (3
layers, the paper's choice in Table 1). The deformable convs start with zero offsets, so with the
same weights the network computes exactly what the plain dilated ResNet does.

Module names are torchvision's (``conv1``, ``layer4.0.conv2.weight``, ``fc``), so its ImageNet
checkpoints load with ``strict=False``, missing only the offset convs (``...conv2.offset_conv``),
which stay at zero. ``resnet50_dcn`` has 25,805,918 parameters: ResNet-50's 25,557,032 plus three
offset convs of ``512 * 18 * 3 * 3 + 18`` (Sec. 2.1: ``2N = 18`` offset channels for a 3x3 kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torchvision
from torch import nn

from edgevision.data.preprocessing import IMAGENET_RGB
from edgevision.layers.deform_conv import DeformConv2d
from edgevision.layers.pooling import global_avg_pool
from edgevision.models._registry import register_model

TORCHVISION_RESNETS: dict[int, Callable[..., torchvision.models.ResNet]] = {
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
}


@dataclass(frozen=True)
class ResNetConfig:
    """ResNet hyper-parameters; defaults are the paper's deformable res5 on ResNet-50."""

    depth: int = 50  # 50 or 101 (the paper's detection and segmentation backbone is ResNet-101)
    num_classes: int = 1000  # ImageNet classifier head, as torchvision's
    # Stages (2-5: res2-res5, torchvision's layer1-layer4) whose 3x3 convs are deformable: res5a-c,
    # the paper's default (Sec. 4.2, Table 1: accuracy saturates at 3 deformable layers).
    deformable_stages: tuple[int, ...] = (5,)
    # Offset fields per deformable conv: 1 is the paper's formulation (Sec. 2.1, 2N offset
    # channels); the authors' MXNet code uses 4 in res5 (72 offset channels).
    deformable_groups: int = 1
    # res5 at stride 1 with all 3x3 convs dilated by 2: stride 16 instead of 32 (Sec. 2.3).
    dilate_res5: bool = True


class ResNet(nn.Module):
    """ResNet classifier, optionally with deformable stages and a dilated res5.

    Shape: ``(B, 3, H, W)`` float32 RGB normalised by the ImageNet mean/std -> ``(B, num_classes)``
    logits; ``forward_features`` gives ``(B, 2048, H/16, W/16)`` with a dilated res5, else
    ``(B, 2048, H/32, W/32)`` (sizes rounded up).
    """

    default_input_size = (224, 224)  # (H, W): ImageNet, torchvision's weights
    input_preprocessing = IMAGENET_RGB

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ResNetConfig()
        if cfg.depth not in TORCHVISION_RESNETS:
            raise ValueError(f"depth must be one of {sorted(TORCHVISION_RESNETS)}, got {cfg.depth}")
        if not set(cfg.deformable_stages) <= {2, 3, 4, 5}:
            raise ValueError(f"deformable_stages must be among 2-5 (res2-res5), got {cfg.deformable_stages}")
        net = TORCHVISION_RESNETS[cfg.depth](
            weights=None,
            num_classes=cfg.num_classes,
            replace_stride_with_dilation=[False, False, cfg.dilate_res5],
        )
        if cfg.dilate_res5:
            # torchvision keeps dilation 1 in the first dilated block; the paper dilates every 3x3
            # conv of res5, res5a's included (as the authors' code: res5a_branch2b dilate=2).
            net.layer4[0].conv2.dilation = net.layer4[0].conv2.padding = (2, 2)
        for stage in cfg.deformable_stages:
            for block in getattr(net, f"layer{stage - 1}"):
                block.conv2 = DeformConv2d.from_conv(block.conv2, cfg.deformable_groups)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.fc = net.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """res5 output: ``(B, 2048, H/16, W/16)`` with a dilated res5, else ``(B, 2048, H/32, W/32)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(global_avg_pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("resnet50_dcn")
def resnet50_dcn(**overrides: Any) -> ResNet:
    """ResNet-50 with deformable res5a-c and a dilated res5 (stride 16), :class:`ResNetConfig`
    fields overridden by keyword."""
    return ResNet(replace(ResNetConfig(), **overrides))
