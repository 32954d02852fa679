"""Deformable R-FCN (Dai et al., "Deformable Convolutional Networks", ICCV 2017, Sec. 2.3 and
Fig. 4) on ResNet-50 with a deformable, dilated res5: the detection head of R-FCN (Dai et al.,
"R-FCN: Object Detection via Region-based Fully Convolutional Networks", NIPS 2016, Sec. 2) with
its position-sensitive RoI pooling replaced by deformable position-sensitive RoI pooling.

There is no region proposal network: the RoIs come from outside, as in the R-FCN paper's
evaluation on given proposals, so ``forward`` takes the images and the RoIs and returns every
RoI's class logits and box deltas; proposal generation, box decoding and NMS are the caller's.

``rfcn_resnet50_dcn`` has 30,532,585 parameters: ``resnet50_dcn``'s 25,805,918 less its ImageNet
classifier (``2048 * 1000 + 1000``), plus the head's 1x1 convs (dimension reduction, score maps,
box maps and the two zero-initialised offset convs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgevision.data.preprocessing import IMAGENET_RGB
from edgevision.errors import ShapeError
from edgevision.layers.deform_roi_pool import DeformPSRoIPool, Mode
from edgevision.models._registry import register_model
from edgevision.models.resnet import ResNet, ResNetConfig

EXAMPLE_ROIS_PER_IMAGE = 3


@dataclass(frozen=True)
class RFCNConfig:
    """Deformable R-FCN hyper-parameters; defaults are the paper's COCO detector on ResNet-50."""

    # Deformable res5a-c, res5 dilated to stride 16 (DCN Sec. 2.3); the paper's backbone is
    # ResNet-101 (Sec. 4.1), ``ResNetConfig(depth=101)``.
    backbone: ResNetConfig = ResNetConfig()
    num_classes: int = 81  # COCO's 80 categories + background (DCN Sec. 4.1; R-FCN Sec. 2: C + 1)
    k: int = 7  # k x k bins per RoI (R-FCN Sec. 2: k x k = 7 x 7)
    mid_channels: int = 1024  # 1x1 conv reducing res5's 2048 channels to 1024 (DCN Sec. 2.3; R-FCN Sec. 2)
    # Samples per bin along each axis: not in the papers; the reference's ``sample_per_part = 4``.
    sampling_ratio: int = 4
    gamma: float = 0.1  # offset scale dp = gamma * dp^ * (w, h) (DCN Sec. 2.2: gamma = 0.1)
    mode: Mode = "mxnet"  # sampling of the reference operator (see edgevision.layers.deform_roi_pool)
    # One box regressor for all classes (R-FCN Sec. 2: a 4k^2-d conv, "class-agnostic"); False: one
    # per class, 4k^2 (C + 1) maps.
    class_agnostic_boxes: bool = True


class RFCNHead(nn.Module):
    """The R-FCN head with deformable position-sensitive RoI pooling (DCN Sec. 2.3; R-FCN Sec. 2).

    A 1x1 conv + ReLU reduces the features to ``mid_channels``; two sibling 1x1 convs give
    ``k^2 * num_classes`` position-sensitive score maps and ``k^2 * 4 * box_classes`` box maps;
    each is pooled into ``k x k`` bins by :class:`DeformPSRoIPool` and the bins vote by averaging
    (R-FCN Sec. 2): a RoI's class logits and box deltas.

    Box maps: ``box_classes = 1`` (class-agnostic, R-FCN Sec. 2's 4k^2-d layer) or ``num_classes``
    (class ``c``'s deltas at ``[4c, 4c + 4)``, background's slot included as Fast R-CNN's). The
    authors' code regresses class-agnostic boxes through 8 maps per bin (background and
    foreground), of which only the foreground half is ever trained; 4 is the same regressor.

    Offsets: each :class:`DeformPSRoIPool` predicts them with a 1x1 conv over the maps it pools,
    one ``k x k`` offset field per RoI shared by all classes. The paper (Fig. 4) and the authors'
    code have an offset field per class for the score maps, from a conv over the reduced features.
    The offset convs start at zero (DCN Sec. 2.3), so a new head is plain R-FCN. The other new
    convs start as the authors' code: weights from N(0, 0.01^2), zero biases.

    Shape: features ``(B, in_channels, H, W)``, rois ``(K, 5)`` ``(batch_index, x1, y1, x2, y2)``
    in image pixels -> class logits ``(K, num_classes)``, box deltas ``(K, 4 * box_classes)``.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 2048,
        k: int = 7,
        mid_channels: int = 1024,
        spatial_scale: float = 1 / 16,
        sampling_ratio: int = 4,
        gamma: float = 0.1,
        mode: Mode = "mxnet",
        class_agnostic_boxes: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.k = k
        box_channels = 4 * (1 if class_agnostic_boxes else num_classes)
        self.reduce = nn.Conv2d(in_channels, mid_channels, 1)
        self.cls_maps = nn.Conv2d(mid_channels, k * k * num_classes, 1)
        self.box_maps = nn.Conv2d(mid_channels, k * k * box_channels, 1)
        for conv in (self.reduce, self.cls_maps, self.box_maps):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        pool_args = (k, spatial_scale, sampling_ratio, gamma, mode)
        self.cls_pool = DeformPSRoIPool(*pool_args, in_channels=k * k * num_classes, out_channels=num_classes)
        self.box_pool = DeformPSRoIPool(
            *pool_args, in_channels=k * k * box_channels, out_channels=box_channels
        )

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, in_channels, H, W), (K, 5) -> (K, num_classes), (K, 4 * box_classes)``."""
        x = F.relu(self.reduce(features))
        cls_logits = self.cls_pool(self.cls_maps(x), rois).mean(dim=(2, 3))
        box_deltas = self.box_pool(self.box_maps(x), rois).mean(dim=(2, 3))
        return cls_logits, box_deltas


class DeformableRFCN(nn.Module):
    """Deformable R-FCN without an RPN: a stride-16 deformable ResNet and :class:`RFCNHead`.

    The backbone keeps torchvision's module names (``backbone.layer4...``), so an ImageNet
    checkpoint loads into it with ``strict=False``; its average pooling and classifier are unused
    (R-FCN Sec. 2: only the convolutional layers compute the shared feature maps).

    Shape: images ``(B, 3, H, W)`` float32 RGB normalised by the ImageNet mean/std, rois ``(K, 5)``
    ``(batch_index, x1, y1, x2, y2)`` in image pixels -> class logits ``(K, num_classes)``
    (softmax for scores, class 0 background) and box deltas ``(K, 4)`` (``(K, 4 * num_classes)``
    with class-specific boxes).
    """

    # (H, W): a 4:3 COCO image with its shorter side at 600 pixels (DCN Sec. 4.1).
    default_input_size = (600, 800)
    input_preprocessing = IMAGENET_RGB  # the ImageNet-initialised backbone's
    onnx_input_names = ("image", "rois")  # deformable PS RoI pooling exports as an engine plugin

    def __init__(self, config: RFCNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RFCNConfig()
        self.backbone = ResNet(cfg.backbone)
        self.backbone.fc = nn.Identity()
        self.stride = 16 if cfg.backbone.dilate_res5 else 32
        self.head = RFCNHead(
            num_classes=cfg.num_classes,
            k=cfg.k,
            mid_channels=cfg.mid_channels,
            spatial_scale=1 / self.stride,
            sampling_ratio=cfg.sampling_ratio,
            gamma=cfg.gamma,
            mode=cfg.mode,
            class_agnostic_boxes=cfg.class_agnostic_boxes,
        )

    def forward(self, images: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W), (K, 5) -> (K, num_classes), (K, 4 | 4 * num_classes)``."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        return self.head(self.backbone.forward_features(images), rois)

    def example_inputs(self, batch: int, input_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A random image batch ``(batch, 3, H, W)`` and ``EXAMPLE_ROIS_PER_IMAGE`` RoIs inside every
        image ``(batch * EXAMPLE_ROIS_PER_IMAGE, 5)``, 1/8 to 1/2 of the image wide and high, drawn
        from torch's global RNG (for tests and tracing)."""
        height, width = input_size
        device = next(self.parameters()).device
        images = torch.randn(batch, 3, height, width, device=device)
        num = batch * EXAMPLE_ROIS_PER_IMAGE
        extent = torch.tensor([width - 1, height - 1], dtype=torch.float32, device=device)
        size = (0.125 + 0.375 * torch.rand(num, 2, device=device)) * extent
        top_left = torch.rand(num, 2, device=device) * (extent - size)
        batch_index = torch.arange(batch, device=device).repeat_interleave(EXAMPLE_ROIS_PER_IMAGE)
        rois = torch.cat([batch_index[:, None].float(), top_left, top_left + size], dim=1)
        return images, rois


@register_model("rfcn_resnet50_dcn")
def rfcn_resnet50_dcn(**overrides: Any) -> DeformableRFCN:
    """Deformable R-FCN on ResNet-50 with deformable res5a-c at stride 16, for COCO (81 classes),
    :class:`RFCNConfig` fields overridden by keyword."""
    return DeformableRFCN(replace(RFCNConfig(), **overrides))
