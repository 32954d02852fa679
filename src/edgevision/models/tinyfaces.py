"""Finding Tiny Faces (Hu & Ramanan, CVPR 2017) on a MobileNetV2 body, for the CPU.

The paper's three ideas, each a config switch so that its ablations run:

- **Scale-specific templates** (Sec. 3): ``templates`` are face shapes clustered from the training
  boxes (:func:`cluster_templates`), each a detector of its own face size (an anchor shape on the
  stride-8 grid, with its own score and box regression).
- **Large context from hypercolumns** (Sec. 3.1, Fig. 4): the templates read features fused from
  two strides of an ImageNet backbone, the stride-8 map and the upsampled stride-16 map, whose
  receptive field (~400 px) is many times a small face; ``context=False`` uses the stride-8 map
  alone (the paper's "foveal" ablation).
- **A pyramid with 2x upsampling** (Sec. 4, Fig. 6): the image runs at 0.5x, 1x and 2x; each
  scale keeps only the faces it is responsible for (:func:`assigned_scale`, by the height of each
  detected box in the original image): the paper finds faces shorter than 40 px on the 2x image,
  taller than 140 px on the 0.5x image, the rest at 1x, since templates are most reliable on faces
  of 40-140 px (its "A-type" templates).

One NMS over all scales (the shared :class:`edgevision.detection.detector.Detector`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgevision.data.preprocessing import IMAGENET_RGB
from edgevision.detection.anchors import AnchorLevel, AnchorShape
from edgevision.detection.coder import SSDBoxCoder
from edgevision.detection.heads import apply_heads
from edgevision.detection.matcher import AnchorMatcher
from edgevision.detection.single_shot import SingleShotDetector
from edgevision.errors import ConfigError
from edgevision.layers.conv_bn import ConvBNAct
from edgevision.models._registry import register_model
from edgevision.models.mobilenetv2 import MobileNetV2, MobileNetV2Config
from edgevision.models.weights import load_weights

# Face heights (px of the network input) the templates are most reliable on: the paper's A-type
# range (Sec. 4: faces of 40-140 px), the band every pyramid scale brings faces into.
SWEET_SPOT = (40.0, 140.0)

# (w, h) px, from `cluster_templates` on the WIDER FACE train faces (the 1,239 local images), each
# face first brought to its pyramid scale (`assigned_scale` over 0.5 / 1 / 2), 8 clusters, seed 0:
# `python benchmarks/tinyfaces_templates.py --count 8`.
WIDER_TEMPLATES: tuple[tuple[float, float], ...] = (
    (16.0, 20.0),
    (26.0, 32.0),
    (40.0, 48.0),
    (52.0, 64.0),
    (62.0, 82.0),
    (78.0, 100.0),
    (100.0, 128.0),
    (179.0, 230.0),
)


@dataclass(frozen=True)
class TinyFacesConfig:
    """Tiny Faces hyper-parameters (paper section in each comment)."""

    templates: tuple[tuple[float, float], ...] = WIDER_TEMPLATES  # (w, h) px (Sec. 3)
    context: bool = True  # hypercolumn of strides 8 and 16 (Sec. 3.1); False: stride 8 only
    test_scales: tuple[float, ...] = (0.5, 1.0, 2.0)  # the pyramid (Sec. 4)
    fused_channels: int = 64  # channels of each stride's 1x1 projection before fusion
    width_mult: float = 1.0  # the MobileNetV2 body's (1.0: ImageNet weights fit)
    # The paper labels a template positive above IoU 0.7 and negative below 0.3 (Sec. 5); with
    # few templates per cell we match as SSD does, every face forced onto its best template.
    sweet_spot: tuple[float, float] = SWEET_SPOT  # face heights each scale brings faces into (Sec. 4)
    match_iou: float = 0.5
    forced_match_iou: float = 0.2
    backbone_weights: str | None = None  # torchvision ImageNet MobileNetV2 checkpoint to start from


class TinyFaces(SingleShotDetector):
    """Tiny Faces network.

    Shape: ``(B, 3, H, W)`` float32 ImageNet-normalised RGB -> ``loc (B, A, 4)`` offsets and
    ``conf (B, A, 2)`` logits, ``A = ceil(H/8) * ceil(W/8) * len(templates)``.
    """

    default_input_size = (480, 640)

    def __init__(self, config: TinyFacesConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or TinyFacesConfig()
        if not cfg.templates or not cfg.test_scales:
            raise ConfigError("Tiny Faces needs at least one template and one pyramid scale")
        self.anchor_levels = (AnchorLevel(8, tuple(AnchorShape(w, h) for w, h in cfg.templates)),)
        self.coder = SSDBoxCoder()
        self.matcher = AnchorMatcher(cfg.match_iou, cfg.forced_match_iou)
        self.input_preprocessing = IMAGENET_RGB
        self.test_scales = tuple(cfg.test_scales)
        body = MobileNetV2(MobileNetV2Config(width_mult=cfg.width_mult, feature_strides=(8, 16)))
        if cfg.backbone_weights is not None:
            load_weights(body, cfg.backbone_weights, "mobilenet_v2")
        # Nothing past stride 16 (past stride 8 without context).
        last = body.feature_indices[-1] if cfg.context else body.feature_indices[0]
        self.body = body.features[: last + 1]
        self.fine_index = body.feature_indices[0]
        fine, coarse = body.feature_channels
        self.fine = ConvBNAct(fine, cfg.fused_channels, 1, activation=nn.ReLU)
        self.coarse = ConvBNAct(coarse, cfg.fused_channels, 1, activation=nn.ReLU) if cfg.context else None
        fused = cfg.fused_channels * (2 if cfg.context else 1)
        # A 3x3 conv on the fused map: each template sees its neighbourhood too (Sec. 3.1).
        self.head = ConvBNAct(fused, fused, 3, activation=nn.ReLU)
        count = len(cfg.templates)
        self.loc = nn.ModuleList([nn.Conv2d(fused, count * 4, 1)])
        self.conf = nn.ModuleList([nn.Conv2d(fused, count * 2, 1)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine = None
        for index, layer in enumerate(self.body):
            x = layer(x)
            if index == self.fine_index:
                fine = x
        fused = self.fine(fine)
        if self.coarse is not None:
            coarse = F.interpolate(self.coarse(x), size=fused.shape[2:], mode="bilinear", align_corners=False)
            fused = torch.cat([fused, coarse], dim=1)
        return apply_heads(self.loc, self.conf, [self.head(fused)], 2)

    def decode(
        self,
        outputs: Sequence[torch.Tensor],
        input_size: tuple[int, int],
        *,
        scale: float = 1.0,
        scales: Sequence[float] = (1.0,),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes and scores, in input pixels, of the faces pyramid scale ``scale`` is responsible
        for (:func:`responsible`: by each box's height in the original image)."""
        boxes, scores = super().decode(outputs, input_size)
        kept = responsible(boxes[:, 3] - boxes[:, 1], scale, scales, self.config.sweet_spot)
        return boxes[kept], scores[kept]


def assigned_scale(
    height: float, scales: Sequence[float], sweet_spot: tuple[float, float] = SWEET_SPOT
) -> float:
    """The pyramid scale that finds a face ``height`` px tall in the original image: of those
    that bring it into ``sweet_spot``, the one nearest 1x (the least resampling); when none does,
    the one that brings it nearest (in log size). With scales 0.5 / 1 / 2 this is the paper's
    rule: under 40 px on 2x, over 140 px on 0.5x, the rest at 1x."""
    low, high = (math.log(v) for v in sweet_spot)

    def distance(s: float) -> float:
        size = math.log(height * s)
        return max(low - size, 0.0, size - high)

    return min(scales, key=lambda s: (distance(s), abs(math.log(s))))


def responsible(
    heights: torch.Tensor, scale: float, scales: Sequence[float], sweet_spot: tuple[float, float] = SWEET_SPOT
) -> torch.Tensor:
    """``(N,)`` bool: which boxes ``heights`` px tall in an input made at pyramid scale ``scale``
    that scale is responsible for, i.e. :func:`assigned_scale` of their ``heights / scale`` px in
    the original image is ``scale`` (vectorised; equal to it, tested)."""
    low, high = math.log(sweet_spot[0]), math.log(sweet_spot[1])
    pyramid = torch.tensor(list(scales), dtype=torch.float64, device=heights.device)
    sizes = torch.log((heights.double() / scale).clamp(min=1e-6))[:, None] + torch.log(pyramid)[None, :]
    distance = torch.maximum((low - sizes).clamp(min=0), (sizes - high).clamp(min=0))
    # Ties (several scales bring a face into the sweet spot) go to the scale nearest 1x.
    order = distance + 1e-9 * torch.log(pyramid).abs()[None, :]
    return pyramid[order.argmin(dim=1)] == scale


def cluster_templates(sizes: np.ndarray, count: int, seed: int = 0, iterations: int = 300) -> np.ndarray:
    """``count`` template shapes from ``(N, 2)`` face ``(w, h)`` px: k-medians under the
    ``1 - IoU`` distance of boxes sharing a centre (as YOLOv2 clusters its anchors), sorted by
    height. Returns ``(count, 2)`` float64."""
    if len(sizes) < count:
        raise ConfigError(f"{len(sizes)} faces cannot make {count} templates")
    rng = np.random.default_rng(seed)
    centres = sizes[rng.choice(len(sizes), count, replace=False)].astype(np.float64)
    for _ in range(iterations):
        assignment = centred_iou(sizes, centres).argmax(axis=1)
        updated = np.array(
            [
                np.median(sizes[assignment == k], axis=0) if (assignment == k).any() else centres[k]
                for k in range(count)
            ]
        )
        if np.allclose(updated, centres):
            break
        centres = updated
    return centres[np.argsort(centres[:, 1])]


def centred_iou(sizes: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """IoU of every ``(w, h)`` in ``sizes`` with every one in ``centres``, boxes sharing a centre."""
    inter = np.minimum(sizes[:, None, 0], centres[None, :, 0]) * np.minimum(
        sizes[:, None, 1], centres[None, :, 1]
    )
    union = sizes[:, None].prod(axis=2) + centres[None, :].prod(axis=2) - inter
    return inter / union


@register_model("tinyfaces", task="detection", weights="tinyfaces_widerface.pth", recipe="single_shot_faces")
def tinyfaces(**overrides: Any) -> TinyFaces:
    """Tiny Faces with :class:`TinyFacesConfig` fields overridden by keyword."""
    return TinyFaces(replace(TinyFacesConfig(), **overrides))


# The paper's ablations (Sec. 3.1, Fig. 4 and 5) as models of their own, trained and scored like
# the full one: benchmarks/detectors_widerface.py compares them.
ONE_TEMPLATE = ((46.0, 58.0),)  # `python benchmarks/tinyfaces_templates.py --count 1`


@register_model("tinyfaces_foveal", task="detection", recipe="single_shot_faces")
def tinyfaces_foveal(**overrides: Any) -> TinyFaces:
    """Tiny Faces without context: the templates read the stride-8 map alone."""
    return TinyFaces(replace(TinyFacesConfig(context=False), **overrides))


@register_model("tinyfaces_one_template", task="detection", recipe="single_shot_faces")
def tinyfaces_one_template(**overrides: Any) -> TinyFaces:
    """Tiny Faces with a single template (one cluster of the same faces) for every face size."""
    return TinyFaces(replace(TinyFacesConfig(templates=ONE_TEMPLATE), **overrides))
