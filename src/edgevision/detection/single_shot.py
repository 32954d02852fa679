"""The shared part of single-shot anchor detectors (FaceBoxes, SSD-style heads): anchors, the
coder and the matcher make their decode and their training targets.

A subclass builds its network and sets ``anchor_levels``, ``coder``, ``matcher`` and
``input_preprocessing``; its ``forward`` returns ``loc (B, A, 4)`` regression outputs and
``conf (B, A, 2)`` background/face logits in the anchor order of
:func:`edgevision.detection.anchors.generate_anchors` (what :func:`apply_heads` produces). A
subclass with a landmark head also sets ``landmark_coder`` and returns ``landmarks (B, A, 10)``
offsets third (and names a third ONNX output). It then
satisfies the detector contract (:class:`edgevision.detection.detector.DetectorModel`) and the
anchor training objective (:class:`edgevision.training.objectives.AnchorObjective`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgevision.data.preprocessing import Preprocessing
from edgevision.detection.anchors import AnchorLevel, generate_anchors
from edgevision.detection.coder import BoxCoder, LandmarkCoder
from edgevision.detection.matcher import AnchorMatcher
from edgevision.errors import ConfigError, ShapeError


class SingleShotDetector(nn.Module):
    """Base class of single-shot anchor face detectors (see the module docstring)."""

    anchor_levels: tuple[AnchorLevel, ...]
    coder: BoxCoder
    matcher: AnchorMatcher
    input_preprocessing: Preprocessing
    test_scales: tuple[float, ...] = (1.0,)  # the image at its own size, as WIDER FACE tests FaceBoxes
    onnx_output_names: tuple[str, ...] = ("loc", "conf")
    landmark_coder: LandmarkCoder | None = None  # set by a detector with a landmark head
    landmark_head: str | None = None  # ... with the name of the head's submodule
    trainable: tuple[str, ...] | None = None  # set by train_only: the parts that still learn

    def train_only(self, *prefixes: str) -> list[nn.Parameter]:
        """Freeze every parameter but those of the submodules named ``prefixes`` (e.g. ``"landm"``)
        and keep the frozen ones in eval mode, batch-norm statistics included, through any later
        ``train()``: the rest of the network computes exactly what it did. Returns the trainable
        parameters (what the optimiser gets).

        Raises:
            ConfigError: a prefix names no submodule with parameters.
        """
        names = [name for name, _ in self.named_parameters()]
        unknown = [p for p in prefixes if not any(n.startswith(p + ".") for n in names)]
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no trainable part {unknown[0]!r}")
        self.trainable = tuple(prefixes)
        kept = []
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(self._is_trainable(name))
            if parameter.requires_grad:
                kept.append(parameter)
        self.train(self.training)
        return kept

    def train(self, mode: bool = True) -> SingleShotDetector:
        super().train(mode)
        if self.trainable is not None:
            for name, module in self.named_modules():
                if name and not self._is_trainable(name):
                    module.eval()
            for name in self.trainable:
                self.get_submodule(name).train(mode)
        return self

    def _is_trainable(self, name: str) -> bool:
        return self.trainable is None or any(name == p or name.startswith(p + ".") for p in self.trainable)

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
    ) -> tuple[torch.Tensor, ...]:
        """The first image's ``loc`` and ``conf`` -> ``(A, 4)`` xyxy boxes in input pixels and
        ``(A,)`` face probabilities, at every pyramid scale alike; with a landmark head, its
        ``landmarks`` -> ``(A, 5, 2)`` points in input pixels too."""
        del scale, scales  # every anchor detects at every scale
        loc, conf, *landmarks = outputs
        anchors = self.anchors(input_size).to(loc.device)
        if loc.shape[1] != len(anchors) or conf.shape[1] != len(anchors):
            raise ShapeError(
                f"the network gave {loc.shape[1]} boxes for a {input_size[1]}x{input_size[0]} input, but "
                f"{type(self).__name__} has {len(anchors)} anchors there: the outputs of another detector?"
            )
        decoded = (self.coder.decode(loc[0], anchors), torch.softmax(conf[0], dim=1)[:, 1])
        if landmarks and self.landmark_coder is not None:
            decoded += (self.landmark_coder.decode(landmarks[0][0], anchors),)
        return decoded
