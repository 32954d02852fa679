"""NASNet-style cells built from a genotype (Zoph et al., CVPR 2018; Real et al., AAAI 2019).

A cell reads two hidden states and runs ``B`` blocks (B = 5, NASNet Sec. 3); each block applies
one op to each of two hidden states and adds the results, and the new state joins the list the
later blocks choose from. A cell's output concatenates some of the states along channels.

Hidden-state indices follow the reference code (``nasnet_utils.NasNetABaseCell``, AmoebaNet's
``network_utils.BaseCell``), so the published genotypes are copied from it as they stand::

    states = [h_{i-1}, h_{i-2}, block 0, block 1, ..., block B-1]

``h_{i-1}`` (index 0) is the previous cell's output after a ReLU-1x1 conv-BN to the cell's
``filters``; ``h_{i-2}`` (index 1) is the output of the cell before that, brought to the same
shape (ReLU + factorized reduction when it is twice the size, ReLU-1x1 conv-BN when only its
channels differ). The first cell after the stem has no ``h_{i-2}`` of its own: the reference feeds
it its input, unprojected, in that slot (``prev_layer=None``), and so does :class:`Cell`.

Each cell says which states it concatenates (``concat``). The papers describe the loose ends (the
block outputs no block reads); the reference code instead concatenates the states its
``used_hiddenstates`` mask leaves out, which differs (NASNet-A's normal cell also concatenates
``h_{i-2}``), and its parameter counts are the papers'. So ``concat`` is data, not derived.

In a reduction cell every op that reads ``h_{i-1}`` or ``h_{i-2}`` has stride 2, so all block
outputs are half the input size. Ops reading block outputs keep stride 1.

:class:`CellNetwork` stacks the cells as Fig. 2 of the NASNet paper (AmoebaNet uses the same
macro-architecture): a stem, then three stacks of ``N`` normal cells with a reduction cell
between stacks, filters doubling at each reduction.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgevision.data.preprocessing import IMAGENET_RGB
from edgevision.errors import ConfigError
from edgevision.layers.conv_bn import ConvBNAct
from edgevision.layers.pooling import global_avg_pool

# ------------------------------------------------------------------------------------------------
# The genotype encoding
# ------------------------------------------------------------------------------------------------

COMBINE_OPS = ("add",)  # NASNet-A and AmoebaNet-A both add; the reference code implements only add


@dataclass(frozen=True)
class Block:
    """One block: ``combine(ops[0](states[inputs[0]]), ops[1](states[inputs[1]]))``."""

    inputs: tuple[int, int]  # hidden-state indices: 0 = h_{i-1}, 1 = h_{i-2}, 2 + k = block k
    ops: tuple[str, str]  # names in :data:`OPS`
    combine: str = "add"  # in :data:`COMBINE_OPS`


@dataclass(frozen=True)
class CellGenotype:
    """The blocks of one cell type and the hidden states its output concatenates."""

    blocks: tuple[Block, ...]
    concat: tuple[int, ...]  # hidden-state indices, concatenated in this order

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ConfigError("a cell needs at least one block")
        for k, block in enumerate(self.blocks):
            if len(block.inputs) != 2 or len(block.ops) != 2:
                raise ConfigError(f"block {k} needs two inputs and two ops, got {block}")
            if not all(0 <= i < 2 + k for i in block.inputs):
                raise ConfigError(f"block {k} reads {block.inputs}; only states 0..{k + 1} exist before it")
            unknown = [op for op in block.ops if op not in OPS]
            if unknown:
                raise ConfigError(f"block {k}: unknown ops {unknown}; known: {', '.join(OPS)}")
            if block.combine not in COMBINE_OPS:
                raise ConfigError(f"block {k}: combine must be one of {COMBINE_OPS}, got {block.combine!r}")
        num_states = 2 + len(self.blocks)
        if not self.concat or len(set(self.concat)) != len(self.concat):
            raise ConfigError(f"concat must name distinct states, got {self.concat}")
        if not all(0 <= i < num_states for i in self.concat):
            raise ConfigError(f"concat {self.concat} names states outside 0..{num_states - 1}")

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings (JSON-ready); :meth:`from_dict` inverts it."""
        return {
            "blocks": [
                {"inputs": list(b.inputs), "ops": list(b.ops), "combine": b.combine} for b in self.blocks
            ],
            "concat": list(self.concat),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "cell") -> CellGenotype:
        """Inverse of :meth:`to_dict`; a one-line :class:`ConfigError` starting with ``where`` on
        data of the wrong shape (missing or unknown keys, wrong types, wrong counts) or a cell
        :meth:`__post_init__` refuses."""
        data = _checked_object(data, where, required=("blocks", "concat"))
        if not isinstance(data["blocks"], list | tuple):
            raise ConfigError(f"{where}: blocks must be a list, got {_short(data['blocks'])}")
        blocks = []
        for k, block in enumerate(data["blocks"]):
            at = f"{where} block {k}"
            block = _checked_object(block, at, required=("inputs", "ops"), optional=("combine",))
            combine = block.get("combine", "add")
            if not isinstance(combine, str):
                raise ConfigError(f"{at}: combine must be a string, got {_short(combine)}")
            inputs = _checked_list(block["inputs"], int, f"{at} inputs", length=2)
            blocks.append(Block(inputs, _checked_list(block["ops"], str, f"{at} ops", length=2), combine))
        concat = _checked_list(data["concat"], int, f"{where} concat")
        try:
            return cls(tuple(blocks), concat)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None

    @classmethod
    def from_reference(
        cls, operations: Sequence[str], hiddenstate_indices: Sequence[int], used_hiddenstates: Sequence[int]
    ) -> CellGenotype:
        """A cell in the reference code's encoding: two ops and two state indices per block, flat,
        in its op names (:data:`REFERENCE_OP_NAMES`), and a 0/1 mask of the states left out of the
        output (``nasnet_utils.NasNetANormalCell``, AmoebaNet's ``model_specs.get_normal_cell``)."""
        if len(operations) != len(hiddenstate_indices) or len(operations) % 2:
            raise ConfigError("the reference gives two operations and two hidden states per block")
        if len(used_hiddenstates) != 2 + len(operations) // 2:
            raise ConfigError("used_hiddenstates needs one flag per hidden state")
        names = [REFERENCE_OP_NAMES.get(op, op) for op in operations]
        blocks = tuple(
            Block(tuple(hiddenstate_indices[i : i + 2]), tuple(names[i : i + 2]))
            for i in range(0, len(operations), 2)
        )
        return cls(blocks, tuple(i for i, used in enumerate(used_hiddenstates) if not used))


@dataclass(frozen=True)
class Genotype:
    """A NASNet search-space architecture: one normal and one reduction cell (Sec. 3)."""

    normal: CellGenotype
    reduction: CellGenotype

    def to_dict(self) -> dict[str, Any]:
        return {"normal": self.normal.to_dict(), "reduction": self.reduction.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        """Inverse of :meth:`to_dict`; a one-line :class:`ConfigError` naming the cell, block and
        field on malformed data (see :meth:`CellGenotype.from_dict`)."""
        data = _checked_object(data, "genotype", required=("normal", "reduction"))
        return cls(
            CellGenotype.from_dict(data["normal"], "normal cell"),
            CellGenotype.from_dict(data["reduction"], "reduction cell"),
        )


def _short(value: Any) -> str:
    """``repr(value)`` cut to a length that keeps an error message on one short line."""
    return reprlib.repr(value)


def _checked_object(
    data: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    """``data`` when it is a mapping with every ``required`` key and no key outside ``required``
    and ``optional`` (a misspelt key is refused, not silently defaulted)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be an object with {', '.join(required)}, got {_short(data)}")
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(str(key) for key in data if key not in required + optional)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; it takes {', '.join(required + optional)}")
    return data


def _checked_list(data: Any, kind: type[int] | type[str], where: str, length: int | None = None) -> tuple:
    """``data`` as a tuple when it is a list of ``kind`` (bools are not integers here) of
    ``length`` entries when that is given."""
    if not isinstance(data, list | tuple) or not all(
        isinstance(x, kind) and not isinstance(x, bool) for x in data
    ):
        what = "integers" if kind is int else "strings"
        raise ConfigError(f"{where} must be a list of {what}, got {_short(data)}")
    if length is not None and len(data) != length:
        raise ConfigError(f"{where} must have {length} entries, got {len(data)}: {_short(data)}")
    return tuple(data)


# ------------------------------------------------------------------------------------------------
# The op vocabulary
# ------------------------------------------------------------------------------------------------


def relu_conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """ReLU, 1x1 conv, BN: how the reference projects hidden states."""
    return nn.Sequential(nn.ReLU(), ConvBNAct(in_channels, out_channels, 1, stride=stride, activation=None))


class SeparableConv(nn.Sequential):
    """The reference's separable op: (ReLU, depthwise kxk, pointwise 1x1, BN) twice.

    The first depthwise conv carries the stride and the first pointwise conv goes straight to
    ``out_channels`` (``nasnet_utils._stacked_separable_conv``). ``dilation`` applies to both
    depthwise convs (AmoebaNet's "3x3 dilated sep. conv.", Sec. 3, which the reference code does
    not implement; slim's ``separable_conv2d(rate=2)`` would dilate each layer so).
    Shape: ``(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, kernel_size: int, dilation: int = 1
    ) -> None:
        pad = dilation * (kernel_size // 2)
        layers: list[nn.Module] = []
        for c_in, s in ((in_channels, stride), (out_channels, 1)):
            layers += [
                nn.ReLU(),
                nn.Conv2d(c_in, c_in, kernel_size, s, pad, dilation=dilation, groups=c_in, bias=False),
                nn.Conv2d(c_in, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            ]
        super().__init__(*layers)


class Pool(nn.Sequential):
    """Max or average pooling ("SAME" padding; the average leaves the padding out, as TF), then a
    1x1 conv-BN (no ReLU, as the reference) only when the channels change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kind: str, kernel_size: int) -> None:
        pad = kernel_size // 2
        pool = (
            nn.MaxPool2d(kernel_size, stride, pad)
            if kind == "max"
            else nn.AvgPool2d(kernel_size, stride, pad, count_include_pad=False)
        )
        layers: list[nn.Module] = [pool]
        if in_channels != out_channels:
            layers.append(ConvBNAct(in_channels, out_channels, 1, activation=None))
        super().__init__(*layers)


def identity(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The reference's ``none`` op: a skip connection, or ReLU-1x1 conv-BN when the stride or the
    channels change."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return relu_conv_bn(in_channels, out_channels, stride)


class BottleneckConv(nn.Sequential):
    """A regular conv op inside a 1x1 bottleneck, as AmoebaNet's ``network_utils`` builds every
    non-separable conv: ReLU-1x1-BN to ``bottleneck_ratio * out_channels`` channels, ReLU-conv-BN,
    ReLU-1x1-BN out.

    ``kind``: ``"kxk"`` one ``k x k`` conv (``dilation`` applies), or ``"1xk_kx1"`` a ``1 x k`` conv,
    BN, ReLU, then a ``k x 1`` conv (stride split over the two). ``bottleneck_ratio`` is 1/4, 3/8
    for ``1x3_3x1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        kind: str,
        kernel_size: int,
        bottleneck_ratio: float = 0.25,
        dilation: int = 1,
    ) -> None:
        mid = int(out_channels * bottleneck_ratio)
        if mid < 1:
            raise ConfigError(f"{out_channels} filters are too few for a {bottleneck_ratio} bottleneck")
        k, pad = kernel_size, dilation * (kernel_size // 2)
        if kind == "kxk":
            conv: list[nn.Module] = [nn.Conv2d(mid, mid, k, stride, pad, dilation=dilation, bias=False)]
        else:
            conv = [
                nn.Conv2d(mid, mid, (1, k), (1, stride), (0, pad), bias=False),
                nn.BatchNorm2d(mid),
                nn.ReLU(),
                nn.Conv2d(mid, mid, (k, 1), (stride, 1), (pad, 0), bias=False),
            ]
        super().__init__(
            relu_conv_bn(in_channels, mid),
            nn.ReLU(),
            *conv,
            nn.BatchNorm2d(mid),
            relu_conv_bn(mid, out_channels),
        )


OpBuilder = Callable[[int, int, int], nn.Module]

# name -> builder(in_channels, out_channels, stride). The 13 ops of the NASNet search space
# (Sec. 3) and AmoebaNet's dilated separable conv (its Sec. 3; its other ops are NASNet's).
# "identity" is the reference's "none"; the separable convs are its "separable_kxk_2"; the regular
# convs are bottlenecked as AmoebaNet's network_utils builds them ("dil_conv_3x3" is its
# "dilated_3x3_rate_2"). No published cell uses either dilated op, and the reference code has no
# dilated separable conv, so "dil_sep_conv_3x3" has no reference name.
OPS: dict[str, OpBuilder] = {
    "identity": identity,
    "conv_1x1": relu_conv_bn,
    "conv_3x3": partial(BottleneckConv, kind="kxk", kernel_size=3),
    "conv_1x3_3x1": partial(BottleneckConv, kind="1xk_kx1", kernel_size=3, bottleneck_ratio=0.375),
    "conv_1x7_7x1": partial(BottleneckConv, kind="1xk_kx1", kernel_size=7),
    "dil_conv_3x3": partial(BottleneckConv, kind="kxk", kernel_size=3, dilation=2),
    "sep_conv_3x3": partial(SeparableConv, kernel_size=3),
    "sep_conv_5x5": partial(SeparableConv, kernel_size=5),
    "sep_conv_7x7": partial(SeparableConv, kernel_size=7),
    "dil_sep_conv_3x3": partial(SeparableConv, kernel_size=3, dilation=2),
    "avg_pool_3x3": partial(Pool, kind="avg", kernel_size=3),
    "max_pool_3x3": partial(Pool, kind="max", kernel_size=3),
    "max_pool_5x5": partial(Pool, kind="max", kernel_size=5),
    "max_pool_7x7": partial(Pool, kind="max", kernel_size=7),
}

# The reference code's op names (nasnet_utils, AmoebaNet's network_utils) -> ours.
REFERENCE_OP_NAMES = {
    "none": "identity",
    "1x1": "conv_1x1",
    "3x3": "conv_3x3",
    "1x3_3x1": "conv_1x3_3x1",
    "1x7_7x1": "conv_1x7_7x1",
    "dilated_3x3_rate_2": "dil_conv_3x3",
    "separable_3x3_2": "sep_conv_3x3",
    "separable_5x5_2": "sep_conv_5x5",
    "separable_7x7_2": "sep_conv_7x7",
    **{name: name for name in ("avg_pool_3x3", "max_pool_3x3", "max_pool_5x5", "max_pool_7x7")},
}


# ------------------------------------------------------------------------------------------------
# Cell building blocks
# ------------------------------------------------------------------------------------------------


class FactorizedReduce(nn.Module):
    """Halve H and W without dropping pixels (``nasnet_utils.factorized_reduction``).

    Two 1x1 convs, one on the even pixels and one on the odd pixels (the input shifted by one,
    zero-padded at the bottom right), concatenated, then BN. ``out_channels`` is split as evenly as
    it goes (the reference requires it even).
    Shape: ``(B, C_in, H, W) -> (B, C_out, ceil(H / 2), ceil(W / 2))``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, bias=False)
        # The odd pixels: stride 2 over the input zero-padded by one on each side, less the first
        # row and column of the result. The conv's own padding, not F.pad: ONNX's Pad (opset 18)
        # does not convert down to opset 17.
        self.conv2 = nn.Conv2d(
            in_channels, out_channels - out_channels // 2, 1, stride=2, padding=1, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.cat([self.conv1(x), self.conv2(x)[:, :, 1:, 1:]], 1))


class DropPath(nn.Module):
    """Zero a whole op output per example with probability ``prob`` in training, scaling the kept
    ones by ``1 / (1 - prob)`` (NASNet's ScheduledDropPath). The identity in eval mode or at
    ``prob = 0``. ``prob`` is an attribute so a trainer can ramp it."""

    def __init__(self, prob: float = 0.0) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep


class Cell(nn.Module):
    """A normal or reduction cell of ``genotype`` with ``filters`` channels per hidden state.

    Args:
        genotype: the cell's blocks and output states.
        in_channels: channels of ``h_{i-1}``, the previous cell's output.
        prev_channels: channels of ``h_{i-2}``; ``None`` when there is none and ``forward`` gets
            the cell's input for it (used as it is, the reference's ``prev_layer=None``).
        filters: channels of every hidden state (``F`` times the stack's filter scaling).
        reduction: halve H and W (stride 2 on the ops that read ``h_{i-1}`` and ``h_{i-2}``).
        prev_reduced: ``h_{i-2}`` is twice the size of ``h_{i-1}`` (the previous cell reduced).

    Shape: ``x (B, in_channels, H, W)``, ``prev (B, prev_channels, sH, sW)`` with ``s = 2`` when
    ``prev_reduced`` -> ``(B, filters * len(concat), H', W')``, ``H' = ceil(H / 2)`` in a reduction
    cell, else ``H``.
    """

    def __init__(
        self,
        genotype: CellGenotype,
        in_channels: int,
        prev_channels: int | None,
        filters: int,
        *,
        reduction: bool,
        prev_reduced: bool,
    ) -> None:
        super().__init__()
        self.blocks = tuple(block.inputs for block in genotype.blocks)
        self.concat = genotype.concat
        self.preprocess = relu_conv_bn(in_channels, filters)
        if prev_channels is None:
            self.preprocess_prev: nn.Module = nn.Identity()
            prev_channels = in_channels
        elif prev_reduced:
            self.preprocess_prev = nn.Sequential(nn.ReLU(), FactorizedReduce(prev_channels, filters))
            prev_channels = filters
        elif prev_channels != filters:
            self.preprocess_prev = relu_conv_bn(prev_channels, filters)
            prev_channels = filters
        else:
            self.preprocess_prev = nn.Identity()
        channels = [filters, prev_channels] + [filters] * len(genotype.blocks)

        def stride(state: int) -> int:
            return 2 if reduction and state < 2 else 1

        self.ops = nn.ModuleList(
            OPS[name](channels[i], filters, stride(i))
            for block in genotype.blocks
            for i, name in zip(block.inputs, block.ops)
        )
        # As the reference, a skip connection is never dropped.
        self.droppable = tuple(name != "identity" for block in genotype.blocks for name in block.ops)
        self.drop_path = DropPath()
        # Concatenated states that are not ``filters`` channels at the output size are brought to
        # it as the reference does: a factorized reduction, or a 1x1 conv-BN, without ReLU.
        self.concat_adjust = nn.ModuleList(
            _match_state(channels[i], filters, stride(i)) for i in genotype.concat
        )
        self.out_channels = filters * len(genotype.concat)

    def _op(self, index: int, x: torch.Tensor) -> torch.Tensor:
        x = self.ops[index](x)
        return self.drop_path(x) if self.droppable[index] else x

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess(x), self.preprocess_prev(prev)]
        for k, (a, b) in enumerate(self.blocks):
            states.append(self._op(2 * k, states[a]) + self._op(2 * k + 1, states[b]))
        return torch.cat([adjust(states[i]) for i, adjust in zip(self.concat, self.concat_adjust)], 1)


def _match_state(in_channels: int, filters: int, stride: int) -> nn.Module:
    """Bring a concatenated state to ``filters`` channels at the cell's output size."""
    if stride == 2:
        return FactorizedReduce(in_channels, filters)
    if in_channels != filters:
        return ConvBNAct(in_channels, filters, 1, activation=None)
    return nn.Identity()


class AuxiliaryHead(nn.Module):
    """The reference's auxiliary classifier (``nasnet.py _build_aux_head``): ReLU, 5x5 average pool
    stride 3 (no padding), ReLU(BN(1x1 conv to 128)), ReLU(BN(conv to 768)) whose kernel spans the
    pooled map at the training resolution, a linear layer. Global average pooling before the
    linear layer lets other input sizes through (it is a no-op at the training resolution).

    Shape: ``(B, C, H, W) -> (B, num_classes)``; the pooled map must be at least ``kernel_size``.
    """

    def __init__(self, in_channels: int, num_classes: int, kernel_size: tuple[int, int]) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3),
            ConvBNAct(in_channels, 128, 1),
            ConvBNAct(128, 768, kernel_size, padding=0),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(global_avg_pool(x))


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------

STEMS = ("imagenet", "cifar")
NUM_STEM_CELLS = 2  # ImageNet stem: two reduction cells at F/4 and F/2 filters (Fig. 2)


@dataclass(frozen=True)
class CellNetworkConfig:
    """What a cell network is made of; each model's config subclasses it with the paper's values."""

    genotype: Genotype
    num_classes: int
    num_cells: int  # N: normal cells per stack, 3 stacks (Fig. 2)
    filters: int  # F: hidden-state channels in the first stack, doubled at each reduction (Sec. 3)
    stem: str  # "imagenet": 3x3 conv stride 2 (valid), then two reduction cells; "cifar": 3x3 conv
    stem_filters: int  # the stem conv's output channels
    dropout: float  # before the classifier
    drop_path_prob: float  # at the last cell; earlier cells get (i + 1) / num cells of it
    aux_head: bool  # auxiliary classifier after the last cell of the second stack, in training
    input_size: tuple[int, int]  # (H, W) the network is built for (sets the aux head's kernel)


class CellNetwork(nn.Module):
    """NASNet's macro-architecture over a :class:`Genotype` (Fig. 2 of the NASNet paper).

    Shape: ``(B, 3, H, W)`` float32 RGB (ImageNet mean/std normalised) -> ``(B, num_classes)``
    logits; in training with ``aux_head`` a tuple ``(logits, aux_logits)``, as torchvision's
    Inception. Any ``H, W`` works (at least 32 for the ImageNet stem); ``config.input_size`` is the
    paper's.
    """

    input_preprocessing = IMAGENET_RGB

    def __init__(self, config: CellNetworkConfig) -> None:
        super().__init__()
        self.config = cfg = config
        if cfg.stem not in STEMS:
            raise ConfigError(f"stem must be one of {STEMS}, got {cfg.stem!r}")
        self.default_input_size = cfg.input_size
        imagenet = cfg.stem == "imagenet"
        # No ReLU: every cell starts with one. The ImageNet stem conv is unpadded ("VALID").
        stride, padding = (2, 0) if imagenet else (1, None)
        self.stem = ConvBNAct(3, cfg.stem_filters, 3, stride=stride, padding=padding, activation=None)
        size = [(s - 3) // 2 + 1 for s in cfg.input_size] if imagenet else list(cfg.input_size)
        # Cell plan: (reduction, filter scaling). The ImageNet stem cells use the reduction cell.
        plan = [(True, 2.0**-k) for k in range(NUM_STEM_CELLS, 0, -1)] if imagenet else []
        for stack in range(3):
            if stack:
                plan.append((True, 2.0**stack))
            plan += [(False, 2.0**stack)] * cfg.num_cells
        channels, prev_channels, prev_reduced = cfg.stem_filters, None, False
        cells = []
        for reduction, scaling in plan:
            cell = Cell(
                cfg.genotype.reduction if reduction else cfg.genotype.normal,
                channels,
                prev_channels,
                int(cfg.filters * scaling),
                reduction=reduction,
                prev_reduced=prev_reduced,
            )
            cells.append(cell)
            channels, prev_channels, prev_reduced = cell.out_channels, channels, reduction
            if reduction:
                size = [math.ceil(s / 2) for s in size]
            if len(cells) == len(plan) - cfg.num_cells - 1:  # the last cell of the second stack
                self.aux_index = len(cells) - 1
                aux_channels, aux_size = channels, size
        self.cells = nn.ModuleList(cells)
        self.num_features = channels
        self.aux_head = (
            AuxiliaryHead(aux_channels, cfg.num_classes, tuple((s - 5) // 3 + 1 for s in aux_size))
            if cfg.aux_head
            else None
        )
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(channels, cfg.num_classes))
        self.set_drop_path_prob(cfg.drop_path_prob)
        self._init_weights()

    def _init_weights(self) -> None:
        # The reference's variance scaling, fan out, for convs and the classifier.
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def set_drop_path_prob(self, prob: float) -> None:
        """Drop-path probability ``prob * (i + 1) / num_cells`` in cell ``i``, stem cells counted
        (the reference scales it by depth; ScheduledDropPath also ramps ``prob`` linearly over
        training, which is the trainer's to do by calling this)."""
        if not 0.0 <= prob < 1.0:
            raise ConfigError(f"drop-path probability must be in [0, 1), got {prob}")
        for i, cell in enumerate(self.cells):
            cell.drop_path.prob = prob * (i + 1) / len(self.cells)

    def _run_cells(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last cell's output and, when the aux head runs, its input."""
        x = prev = self.stem(x)
        aux_input = None
        for i, cell in enumerate(self.cells):
            x, prev = cell(x, prev), x
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux_input = x
        return x, aux_input

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, num_features, H/32, W/32)`` (ImageNet stem) or ``(B, num_features, H/4, W/4)``
        (CIFAR stem), after the final ReLU."""
        return F.relu(self._run_cells(x)[0])

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(global_avg_pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        features, aux_input = self._run_cells(x)
        logits = self.forward_head(F.relu(features))
        if aux_input is None:
            return logits
        return logits, self.aux_head(aux_input)
