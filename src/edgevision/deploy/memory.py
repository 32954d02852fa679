"""Activation memory planning: one arena for every activation tensor of an ONNX graph.

A tensor lives from the node that produces it to the last node that reads it, in the graph's
topological node order (graph inputs from the first node, graph outputs to the last). Tensors whose
lifetimes overlap must not share bytes; the others may. Offsets are assigned greedily by size:
largest first, each into the smallest gap that fits between the already placed tensors whose
lifetimes overlap it, else above the highest of them ("Greedy by Size for Offset Calculation",
Pisarchyk & Lee, *Efficient Memory Management for Deep Neural Net Inference*, 2020; the arena
planner of TensorFlow Lite).

Sizes come from ONNX shape inference, so dynamic input dimensions (FaceBoxes' ``height`` and
``width``) must be given concrete values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from edgevision.deploy.graph import with_input_shapes
from edgevision.errors import ConfigError, MemoryPlanError

DEFAULT_ALIGNMENT = 64  # bytes: a cache line, and enough for AVX-512 loads
_SUBGRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


@dataclass(frozen=True)
class TensorLifetime:
    """An activation tensor of ``size`` bytes, live from node ``first`` to node ``last`` inclusive
    (indices into the graph's topologically ordered nodes)."""

    name: str
    size: int
    first: int
    last: int

    def overlaps(self, other: TensorLifetime) -> bool:
        """Whether the two tensors are live at a common node."""
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryReport:
    """Activation memory of a graph in bytes, each tensor counted at its size rounded up to the
    plan's alignment.

    Attributes:
        num_tensors: activation tensors (graph inputs and node outputs, not initializers).
        naive_bytes: every tensor in its own buffer: the sum of their sizes.
        arena_bytes: the planned arena, i.e. the peak memory with the plan.
        lower_bound_bytes: the most bytes live at one node, which no plan can go below.
    """

    num_tensors: int
    naive_bytes: int
    arena_bytes: int
    lower_bound_bytes: int

    def __str__(self) -> str:
        share = self.arena_bytes / max(self.naive_bytes, 1)
        return "\n".join(
            [
                f"activation memory of {self.num_tensors} tensors",
                f"  naive (a buffer each)    {_format_bytes(self.naive_bytes)}",
                f"  planned arena            {_format_bytes(self.arena_bytes)}  {share:6.1%} of naive",
                f"  lower bound (peak live)  {_format_bytes(self.lower_bound_bytes)}",
            ]
        )


@dataclass(frozen=True)
class MemoryPlan:
    """Offsets of activation tensors in one arena, such that tensors live at a common node never
    share bytes.

    Attributes:
        tensors: the tensors, in graph order.
        offsets: each tensor's offset in the arena in bytes, a multiple of ``alignment``.
        alignment: bytes; each tensor takes its size rounded up to a multiple of it.
        arena_size: bytes the arena needs: the highest end of a tensor.
    """

    tensors: tuple[TensorLifetime, ...]
    offsets: tuple[int, ...]
    alignment: int
    arena_size: int

    def report(self) -> MemoryReport:
        """The naive, planned and lower-bound memory of the plan's tensors."""
        sizes = [_round_up(tensor.size, self.alignment) for tensor in self.tensors]
        steps = max((tensor.last for tensor in self.tensors), default=-1) + 1
        live = [
            sum(size for tensor, size in zip(self.tensors, sizes) if tensor.first <= step <= tensor.last)
            for step in range(steps)
        ]
        return MemoryReport(len(self.tensors), sum(sizes), self.arena_size, max(live, default=0))


def plan_memory(
    model: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    alignment: int = DEFAULT_ALIGNMENT,
) -> MemoryPlan:
    """Plan the activation arena of ``model`` for concrete input shapes; see :func:`tensor_lifetimes`
    and :func:`plan_offsets`."""
    return plan_offsets(tensor_lifetimes(model, input_shapes), alignment)


def tensor_lifetimes(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> tuple[TensorLifetime, ...]:
    """The activation tensors of ``model``'s graph (its inputs and every node output; initializers
    are weights, not activations) with their sizes and lifetimes, in graph order.

    Args:
        model: an ONNX model whose nodes are topologically ordered, as the ONNX spec requires.
        input_shapes: input name -> concrete shape, e.g. ``{"image": (1, 3, 480, 640)}``, for the
            inputs with dynamic dimensions; other inputs keep their declared shapes.

    Raises:
        ConfigError: ``input_shapes`` names a tensor that is not a graph input.
        ShapeError: a shape in ``input_shapes`` has another rank than the input, or contradicts
            one of its fixed dimensions.
        MemoryPlanError: shape inference fails, leaves some tensors without a concrete size (the
            message names them), or the graph reads a tensor before producing it or has subgraphs
            (If, Loop, Scan), which are not planned.
    """
    graph = model.graph
    weights = {tensor.name for tensor in graph.initializer} | {
        tensor.values.name for tensor in graph.sparse_initializer
    }
    first = {value.name: 0 for value in graph.input if value.name not in weights}
    last = dict(first)
    for step, node in enumerate(graph.node):
        if any(attribute.type in _SUBGRAPH_TYPES for attribute in node.attribute):
            raise MemoryPlanError(f"node {step} ({node.op_type}) has a subgraph; control flow is not planned")
        for name in node.input:
            if not name or name in weights:
                continue  # "" is an omitted optional input
            if name not in first:
                raise MemoryPlanError(
                    f"node {step} ({node.op_type}) reads {name!r} before any node produces it: the graph "
                    "is not topologically sorted"
                )
            last[name] = step
        for name in filter(None, node.output):
            first[name] = last[name] = step
    for value in graph.output:
        last[value.name] = max(len(graph.node) - 1, 0)
    sizes = _tensor_sizes(model, input_shapes or {})
    unknown = [name for name in first if sizes.get(name) is None]
    if unknown:
        shown = ", ".join(unknown[:8]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 8 else "")
        raise MemoryPlanError(
            f"shape inference left the size of {shown} unknown; give concrete shapes for the dynamic inputs"
        )
    return tuple(TensorLifetime(name, sizes[name], first[name], last[name]) for name in first)


def plan_offsets(tensors: Sequence[TensorLifetime], alignment: int = DEFAULT_ALIGNMENT) -> MemoryPlan:
    """Greedy-by-size offsets for ``tensors``: the largest first, each at the start of the smallest
    gap that fits between the placed tensors whose lifetimes overlap it, else above them all.

    Raises:
        ConfigError: ``alignment`` is below 1 byte.
    """
    if alignment < 1:
        raise ConfigError(f"alignment must be at least 1 byte, got {alignment}")
    sizes = [_round_up(tensor.size, alignment) for tensor in tensors]
    order = sorted(range(len(tensors)), key=lambda i: (-sizes[i], tensors[i].first, i))
    offsets = [0] * len(tensors)
    for rank, i in enumerate(order):
        blocks = [(offsets[j], sizes[j]) for j in order[:rank] if tensors[j].overlaps(tensors[i])]
        offsets[i] = _best_fit(sizes[i], blocks)
    arena_size = max((offset + size for offset, size in zip(offsets, sizes)), default=0)
    return MemoryPlan(tuple(tensors), tuple(offsets), alignment, arena_size)


def _best_fit(size: int, blocks: list[tuple[int, int]]) -> int:
    """The start of the smallest gap of at least ``size`` bytes between ``(offset, size)`` blocks
    (the lowest of equal gaps), else the end of the highest block."""
    best, best_gap, end = None, math.inf, 0
    for offset, length in sorted(blocks):
        if size <= offset - end < best_gap:
            best, best_gap = end, offset - end
        end = max(end, offset + length)
    return end if best is None else best


def _tensor_sizes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, int | None]:
    """Bytes of every value whose type shape inference makes concrete, else ``None``."""
    try:
        inferred = onnx.shape_inference.infer_shapes(
            with_input_shapes(model, input_shapes), strict_mode=True, data_prop=True
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        message = " ".join(str(error).split())
        raise MemoryPlanError(f"ONNX shape inference failed: {message}") from None
    graph = inferred.graph
    return {value.name: _size(value.type) for value in [*graph.input, *graph.value_info, *graph.output]}


def _size(value_type: onnx.TypeProto) -> int | None:
    """Bytes of a tensor type with a concrete shape (a byte an element for sub-byte types), else
    ``None``."""
    if value_type.WhichOneof("value") != "tensor_type":
        return None
    tensor = value_type.tensor_type
    if tensor.elem_type in (TensorProto.UNDEFINED, TensorProto.STRING) or not tensor.HasField("shape"):
        return None
    if not all(dim.HasField("dim_value") for dim in tensor.shape.dim):
        return None
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
    return math.prod(dim.dim_value for dim in tensor.shape.dim) * itemsize


def _round_up(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment


def _format_bytes(size: int) -> str:
    return f"{size / 2**20:9.2f} MiB {size:>13,} B"
