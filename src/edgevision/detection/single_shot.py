"""The shared part of single-shot anchor detectors (FaceBoxes, SSD-style heads): anchors, the
coder and the matcher make their decode and their training targets.

A subclass builds its network and sets ``anchor_levels``, ``coder``, ``matcher`` and
``input_preprocessing``; its ``forward`` returns ``loc (B, A, 4)`` regression outputs and
``conf (B, A, 2)`` background/face logits in the anchor order of
:func:`edgevision.detection.anchors.generate_anchors` (what :func:`apply_heads` produces). It then
satisfies the detector contract (:class:`edgevision.detection.detector.DetectorModel`) and the
anchor training objective (:class:`edgevision.training.objectives.AnchorObjective`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgevision.data.preprocessing import Preprocessing
from edgevision.detection.anchors import AnchorLevel, generate_anchors
from edgevision.detection.coder import BoxCoder
from edgevision.detection.matcher import AnchorMatcher
from edgevision.errors import ShapeError


class SingleShotDetector(nn.Module):
    """Base class of single-shot anchor face detectors (see the module docstring)."""

    anchor_levels: tuple[AnchorLevel, ...]
    coder: BoxCoder
    matcher: AnchorMatcher
    input_preprocessing: Preprocessing
    test_scales: tuple[float, ...] = (1.0,)  # the image at its own size, as WIDER FACE tests FaceBoxes
    onnx_output_names: tuple[str, ...] = ("loc", "conf")

    @property
    def min_input_size(self) -> int:
        """The finest anchor stride, px: a smaller input holds no cell of the first level."""
        return min(level.stride for level in self.anchor_levels)

    @property
    def max_stride(self) -> int:
        """The coarsest anchor stride, px (training sizes are multiples of it)."""
        return max(level.stride for level in self.anchor_levels)

    def anchors(self, image_size: tuple[int, int]) -> torch.Tensor:
        """``(A, 4)`` cxcywh pixel anchors for an ``(H, W)`` network input (cached: read only)."""
        return generate_anchors(self.anchor_levels, (int(image_size[0]), int(image_size[1])))

    def decode(
        self,
        outputs: Sequence[torch.Tensor],
        input_size: tuple[int, int],
        *,
        scale: float = 1.0,
        scales: Sequence[float] = (1.0,),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first image's ``loc`` and ``conf`` -> ``(A, 4)`` xyxy boxes in input pixels and
        ``(A,)`` face probabilities, at every pyramid scale alike."""
        del scale, scales  # every anchor detects at every scale
        loc, conf = outputs
        anchors = self.anchors(input_size).to(loc.device)
        if loc.shape[1] != len(anchors) or conf.shape[1] != len(anchors):
            raise ShapeError(
                f"the network gave {loc.shape[1]} boxes for a {input_size[1]}x{input_size[0]} input, but "
                f"{type(self).__name__} has {len(anchors)} anchors there: the outputs of another detector?"
            )
        return self.coder.decode(loc[0], anchors), torch.softmax(conf[0], dim=1)[:, 1]
