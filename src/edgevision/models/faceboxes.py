"""FaceBoxes: a CPU real-time face detector (Zhang et al., IJCB 2017).

RDCL (Sec. 3.1) shrinks the input 32x in four cheap steps with C.ReLU; MSCL (Sec. 3.2) detects on
three scales (inception3 at stride 32, conv3_2 at 64, conv4_2 at 128); anchor densification
(Sec. 3.3) tiles the 32 and 64 px anchors 4x4 and 2x2 per cell. 1,007,330 parameters.

Optionally (``landmarks=True``, ours), RetinaFace's landmark head: one more 1x1 conv per
detection level predicting five facial landmarks per anchor (:class:`LandmarkCoder`), 32,230
parameters more. Without it the network is exactly FaceBoxes'.

Layer names follow FaceBoxes.PyTorch, so its checkpoints load with ``strict=True`` (see
:func:`edgevision.models.weights.state_dict_from_file`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgevision.data.preprocessing import Preprocessing
from edgevision.detection.anchors import AnchorLevel, square
from edgevision.detection.coder import LandmarkCoder, SSDBoxCoder
from edgevision.detection.detections import NUM_LANDMARKS
from edgevision.detection.heads import apply_head, apply_heads
from edgevision.detection.matcher import AnchorMatcher
from edgevision.detection.single_shot import SingleShotDetector
from edgevision.layers.conv_bn import ConvBNReLU
from edgevision.layers.crelu import ConvBNCReLU
from edgevision.layers.inception import FaceBoxesInception
from edgevision.models._registry import register_model


@dataclass(frozen=True)
class FaceBoxesConfig:
    """FaceBoxes hyper-parameters; defaults are the paper's."""

    num_classes: int = 2  # face + background (Sec. 3.4)
    # Anchor sizes and densities per detection layer (Sec. 3.3, Table 1), densified tiles placed
    # from the cell corner as FaceBoxes.PyTorch's PriorBox does (the reference weights need it).
    anchor_levels: tuple[AnchorLevel, ...] = (
        AnchorLevel(stride=32, shapes=(square(32, 4), square(64, 2), square(128)), offsets="corner"),
        AnchorLevel(stride=64, shapes=(square(256),), offsets="corner"),
        AnchorLevel(stride=128, shapes=(square(512),), offsets="corner"),
    )
    center_variance: float = 0.1  # SSD coder variances, as in both reference codes
    size_variance: float = 0.2
    match_iou: float = 0.35  # an anchor overlapping a face this much is positive (Sec. 3.4)
    forced_match_iou: float = 0.2  # a face's best anchor is forced positive above this (reference)
    # Input: BGR pixels minus the per-channel mean (FaceBoxes.PyTorch).
    mean_bgr: tuple[float, float, float] = field(default=(104.0, 117.0, 123.0))
    # ours: a landmark head (five points per anchor, RetinaFace's encoding). Off, the network and
    # its weights files are FaceBoxes.PyTorch's.
    landmarks: bool = False


class FaceBoxes(SingleShotDetector):
    """FaceBoxes network.

    Shape: ``(B, 3, H, W)`` float32 mean-subtracted BGR -> ``loc (B, A, 4)`` offsets and
    ``conf (B, A, 2)`` logits, ``A = len(self.anchors((H, W)))``; with the landmark head also
    ``landmarks (B, A, 10)`` offsets.
    """

    default_input_size = (480, 640)  # (H, W): VGA, the paper's speed benchmark (Sec. 4.2)

    def __init__(self, config: FaceBoxesConfig | None = None) -> None:
        super().__init__()
        self.config = config or FaceBoxesConfig()
        self.anchor_levels = self.config.anchor_levels
        self.coder = SSDBoxCoder(self.config.center_variance, self.config.size_variance)
        self.matcher = AnchorMatcher(self.config.match_iou, self.config.forced_match_iou)
        self.input_preprocessing = Preprocessing("BGR", self.config.mean_bgr)
        if self.config.landmarks:
            self.landmark_coder = LandmarkCoder(self.config.center_variance)
            self.landmark_head = "landm"
            self.onnx_output_names = ("loc", "conf", "landmarks")
        # RDCL: rapidly digested convolutional layers (Sec. 3.1).
        self.conv1 = ConvBNCReLU(3, 24, kernel_size=7, stride=4)
        self.conv2 = ConvBNCReLU(48, 64, kernel_size=5, stride=2)
        # MSCL: multiple scale convolutional layers (Sec. 3.2).
        self.inception1 = FaceBoxesInception()
        self.inception2 = FaceBoxesInception()
        self.inception3 = FaceBoxesInception()
        self.conv3_1 = ConvBNReLU(128, 128, 1)
        self.conv3_2 = ConvBNReLU(128, 256, 3, stride=2)
        self.conv4_1 = ConvBNReLU(256, 128, 1)
        self.conv4_2 = ConvBNReLU(128, 256, 3, stride=2)
        source_channels = (128, 256, 256)
        per_cell = [level.anchors_per_cell for level in self.config.anchor_levels]
        self.loc = nn.ModuleList(
            nn.Conv2d(c, k * 4, kernel_size=3, padding=1) for c, k in zip(source_channels, per_cell)
        )
        self.conf = nn.ModuleList(
            nn.Conv2d(c, k * self.config.num_classes, kernel_size=3, padding=1)
            for c, k in zip(source_channels, per_cell)
        )
        if self.config.landmarks:
            self.landm = nn.ModuleList(
                # 1x1, as RetinaFace's LandmarkHead: a ninth of a 3x3's cost on the 21-anchor level
                nn.Conv2d(c, k * 2 * NUM_LANDMARKS, kernel_size=1)
                for c, k in zip(source_channels, per_cell)
            )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three detection sources at strides 32, 64, 128: ``(B, 128|256|256, H/s, W/s)``."""
        x = F.max_pool2d(self.conv1(x), kernel_size=3, stride=2, padding=1)
        x = F.max_pool2d(self.conv2(x), kernel_size=3, stride=2, padding=1)
        x = self.inception3(self.inception2(self.inception1(x)))
        sources = [x]
        x = self.conv3_2(self.conv3_1(x))
        sources.append(x)
        x = self.conv4_2(self.conv4_1(x))
        sources.append(x)
        return sources

    def forward_head(self, sources: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``loc (B, A, 4)`` offsets and ``conf (B, A, num_classes)`` logits from the sources,
        and ``landmarks (B, A, 10)`` offsets with the landmark head."""
        outputs = apply_heads(self.loc, self.conf, sources, self.config.num_classes)
        if self.config.landmarks:
            outputs += (apply_head(self.landm, sources, 2 * NUM_LANDMARKS),)
        return outputs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.forward_head(self.forward_features(x))


def _options_from_weights(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A weights file with the landmark head's tensors builds a FaceBoxes with the head (one
    without it, the default network: no option, so its plans record none)."""
    return {"landmarks": True} if any(key.startswith("landm.") for key in state) else {}


@register_model(
    "faceboxes",
    task="detection",
    weights="faceboxes_widerface.pth",
    recipe="single_shot_faces",
    default=True,
    options_from_weights=_options_from_weights,
)
def faceboxes(**overrides: Any) -> FaceBoxes:
    """FaceBoxes with :class:`FaceBoxesConfig` fields overridden by keyword."""
    return FaceBoxes(replace(FaceBoxesConfig(), **overrides))
