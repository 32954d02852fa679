"""Classification heads for face-recognition training: ArcFace, CosFace and a plain softmax.

A head holds one weight vector per training identity and turns a batch of embeddings and their
labels into logits for cross-entropy. ArcFace and CosFace compare L2-normalised embeddings with
L2-normalised class weights, so every logit is ``s`` times a function of one angle ``theta_j``
(embedding to class ``j``); the margin applies to the labelled class only:

- ArcFace (Deng et al., CVPR 2019, eq. 3): ``s * cos(theta_y + m)``, others ``s * cos(theta_j)``.
- CosFace (Wang et al., CVPR 2018, eq. 4): ``s * (cos(theta_y) - m)``, others ``s * cos(theta_j)``.
- Softmax: ``W x + b``, neither normalised nor with a margin: the ablation's baseline.

ArcFace's fallback where ``theta_y + m > pi``. Past ``pi``, ``cos(theta_y + m)`` rises again as
``theta_y`` grows, so the loss would reward pushing an embedding further from its own class. We
use InsightFace's reference rule (``recognition/arcface_torch/losses.py``, ``ArcFace`` with
``easy_margin = False``, the ``th`` / ``mm`` constants of its older ``ArcMarginProduct``): where
``cos(theta_y) <= cos(pi - m)`` the target cosine becomes ``cos(theta_y) - m * sin(m)`` (the
reference writes ``sin(pi - m) * m``, the same number). It is CosFace's additive penalty with the
margin ``m * sin(m)`` (the first-order size of the angular margin at that angle), linear in
``cos(theta_y)``, so the target logit keeps falling as the angle grows and its gradient never
vanishes or flips. It does not meet ``cos(theta_y + m)`` at the switch: there the main branch
gives ``cos(pi) = -1`` and the fallback ``-cos(m) - m sin(m)`` (-1.117 for ``m = 0.5``), a step
down of 0.117 that the reference has too; we keep the reference's numbers rather than a smoothed
variant so that margins and results compare with published ArcFace training. The alternative
``easy_margin`` (no margin at all once ``theta_y > 90 deg``) drops the margin for every hard
example, far from the paper, and is not the reference's default.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from edgevision.errors import ConfigError, ShapeError
from edgevision.validation import check_number


def normalised_cosines(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cosines ``(B, C)`` between embeddings ``(B, D)`` and class weights ``(C, D)``, each row
    L2-normalised first (a zero row has cosine 0 with everything)."""
    return F.linear(F.normalize(embeddings, dim=1), F.normalize(weight, dim=1))


def arcface_logits(cosines: torch.Tensor, labels: torch.Tensor | None, *, s: float, m: float) -> torch.Tensor:
    """ArcFace logits ``(B, C)`` from cosines ``(B, C)`` and labels ``(B,)`` (no margin when None).

    The angle is ``acos`` of the cosine clamped to ``[-1 + eps, 1 - eps]`` (``eps`` of its dtype):
    cosines of normalised vectors can round past +-1, where ``acos`` is NaN and its derivative
    infinite, and ``torch.where`` back-propagates through the branch it did not pick (0 * inf is
    NaN), so both branches must stay finite everywhere.
    """
    if labels is None:
        return s * cosines
    target = cosines.gather(1, labels[:, None])
    eps = torch.finfo(cosines.dtype).eps
    with_margin = torch.cos(torch.acos(target.clamp(-1.0 + eps, 1.0 - eps)) + m)
    fallback = target - m * math.sin(m)
    target = torch.where(target > math.cos(math.pi - m), with_margin, fallback)
    return s * cosines.scatter(1, labels[:, None], target)


def cosface_logits(cosines: torch.Tensor, labels: torch.Tensor | None, *, s: float, m: float) -> torch.Tensor:
    """CosFace logits ``(B, C)``: ``s * (cos - m)`` at the label, ``s * cos`` elsewhere."""
    if labels is None:
        return s * cosines
    target = cosines.gather(1, labels[:, None]) - m
    return s * cosines.scatter(1, labels[:, None], target)


class _MarginHead(nn.Module):
    """Shared part of the normalised heads: the ``(C, D)`` class weights, ``s``, ``m``, checks."""

    max_margin: float  # the largest margin that means something for this head

    def __init__(self, in_features: int, num_classes: int, s: float, m: float) -> None:
        super().__init__()
        _check_sizes(in_features, num_classes)
        self.s = check_number("s", s, 0.0, math.inf, low_open=True, high_open=True)
        self.m = check_number("m", m, 0.0, self.max_margin)
        # As the reference's classifier (normal, std 0.01); only the direction matters here.
        self.weight = nn.Parameter(torch.empty(num_classes, in_features).normal_(0.0, 0.01))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Logits ``(B, C)`` for embeddings ``(B, D)`` and labels ``(B,)`` in ``[0, C)``; with
        ``labels=None``, ``s * cos`` for every class (no margin: for inference)."""
        _check_batch(embeddings, labels, *self.weight.shape[::-1])
        return self._logits(normalised_cosines(embeddings, self.weight), labels, s=self.s, m=self.m)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.weight.shape[1]}, num_classes={self.weight.shape[0]}, s={self.s}, m={self.m}"
        )


class ArcFaceHead(_MarginHead):
    """ArcFace: additive angular margin ``m`` (radians, in ``[0, pi/2]``) at scale ``s`` (paper
    section 2.1: s = 64, m = 0.5), with the reference's fallback (module docstring)."""

    max_margin = math.pi / 2
    _logits = staticmethod(arcface_logits)

    def __init__(self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.5) -> None:
        super().__init__(in_features, num_classes, s, m)


class CosFaceHead(_MarginHead):
    """CosFace: additive cosine margin ``m`` (in ``[0, 1]``; past half the cosine's range nothing
    is left to learn) at scale ``s`` (paper section 4.1: s = 64, m = 0.35)."""

    max_margin = 1.0
    _logits = staticmethod(cosface_logits)

    def __init__(self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.35) -> None:
        super().__init__(in_features, num_classes, s, m)


class SoftmaxHead(nn.Module):
    """A plain linear classifier ``W x + b`` (torch's ``nn.Linear`` initialisation); the labels
    are checked, as by the margin heads, but do not change the logits."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        _check_sizes(in_features, num_classes)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Logits ``(B, C)`` for embeddings ``(B, D)``."""
        _check_batch(embeddings, labels, self.linear.in_features, self.linear.out_features)
        return self.linear(embeddings)


HEADS: dict[str, type[nn.Module]] = {"arcface": ArcFaceHead, "cosface": CosFaceHead, "softmax": SoftmaxHead}


def margin_head(name: str, in_features: int, num_classes: int, **options: float) -> nn.Module:
    """The head called ``name`` (``"arcface"``, ``"cosface"`` or ``"softmax"``) with its options
    (``s``, ``m`` for the margin heads; none for softmax).

    Example:
        >>> margin_head("arcface", 128, 30, m=0.4)
        ArcFaceHead(in_features=128, num_classes=30, s=64.0, m=0.4)

    Raises:
        ConfigError: an unknown name, an option the head does not take, or one out of range.
    """
    if name not in HEADS:
        raise ConfigError(f"unknown margin head {name!r}; choose one of {', '.join(HEADS)}")
    head = HEADS[name]
    accepted = set(inspect.signature(head).parameters) - {"in_features", "num_classes"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        takes = f"takes only {', '.join(sorted(accepted))}" if accepted else "takes no options"
        raise ConfigError(f"the {name} head {takes}, got {', '.join(unknown)}")
    return head(in_features, num_classes, **options)


def _check_sizes(in_features: int, num_classes: int) -> None:
    for name, value in (("in_features", in_features), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive whole number, got {value!r}")


def _check_batch(
    embeddings: torch.Tensor, labels: torch.Tensor | None, in_features: int, num_classes: int
) -> None:
    """Refuse embeddings that are not ``(B, in_features)`` and labels that are not ``(B,)``
    integers in ``[0, num_classes)``: out of range, ``gather`` would fail deep inside (on CUDA as
    an asynchronous device assert), so they are named here."""
    if embeddings.ndim != 2 or embeddings.shape[1] != in_features:
        raise ShapeError(f"embeddings must be (B, {in_features}), got {tuple(embeddings.shape)}")
    if labels is None:
        return
    if labels.shape != embeddings.shape[:1]:
        raise ShapeError(
            f"labels must be ({embeddings.shape[0]},) to match the embeddings, got {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ConfigError(f"labels must be integer class indices, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ConfigError(
            f"labels must be in [0, {num_classes}), got values in [{int(labels.min())}, {int(labels.max())}]"
        )
