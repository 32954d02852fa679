"""Read-only views of an ONNX graph that the builder passes share: constants, producers,
consumers, op counts, and one way to rebuild a model from new nodes and initializers.

Passes never edit a ``ModelProto`` in place: they read it through these helpers and return a new
model made by :func:`rebuild`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from edgevision.errors import ConfigError, ShapeError


def constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every tensor whose value is known without running the graph: initializers and the outputs
    of ``Constant`` nodes, by name."""
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            values[node.output[0]] = constant_node_value(node)
    return values


def constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    """The value of a ``Constant`` node, whichever of its attributes holds it."""
    attribute = node.attribute[0]
    value = onnx.helper.get_attribute_value(attribute)
    if attribute.name in ("value", "sparse_value"):
        return numpy_helper.to_array(value)
    dtypes = {
        "value_float": np.float32,
        "value_floats": np.float32,
        "value_int": np.int64,
        "value_ints": np.int64,
    }
    if attribute.name in dtypes:
        return np.array(value, dtype=dtypes[attribute.name])
    return np.array(value)  # value_string(s)


def consumers(graph: onnx.GraphProto) -> dict[str, list[int]]:
    """Tensor name -> indices in ``graph.node`` of the nodes that read it (in graph order; a node
    reading the tensor twice appears twice)."""
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name:
                readers.setdefault(name, []).append(index)
    return readers


def producers(graph: onnx.GraphProto) -> dict[str, int]:
    """Tensor name -> index in ``graph.node`` of the node that writes it."""
    return {name: index for index, node in enumerate(graph.node) for name in node.output if name}


def only_reader(graph: onnx.GraphProto, readers: dict[str, list[int]], name: str) -> int | None:
    """Index of the one node that reads ``name``, if exactly one does and ``name`` is not also a
    graph output (then a rewrite may take the tensor away)."""
    indices = readers.get(name, [])
    if len(indices) != 1 or name in graph_output_names(graph):
        return None
    return indices[0]


def graph_output_names(graph: onnx.GraphProto) -> set[str]:
    return {output.name for output in graph.output}


def attributes(node: onnx.NodeProto) -> dict[str, object]:
    """A node's attributes as plain Python values."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def op_counts(model: onnx.ModelProto) -> Counter[str]:
    """How many nodes of each op type the graph has (``domain::op`` outside the default domain)."""
    return Counter(
        f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in model.graph.node
    )


def rebuild(
    model: onnx.ModelProto,
    nodes: Iterable[onnx.NodeProto],
    initializers: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` with its nodes replaced by ``nodes``.

    ``initializers`` maps names to new or replaced initializer values; initializers nothing reads
    any more are dropped, and so is stale ``value_info`` (shape inference recomputes it).
    """
    new = onnx.ModelProto()
    new.CopyFrom(model)
    graph = new.graph
    nodes = list(nodes)
    del graph.node[:]
    graph.node.extend(nodes)
    values = {init.name: init for init in model.graph.initializer}
    for name, array in (initializers or {}).items():
        values[name] = numpy_helper.from_array(np.asarray(array), name)
    read = {name for node in nodes for name in node.input} | graph_output_names(graph)
    del graph.initializer[:]
    graph.initializer.extend(init for name, init in values.items() if name in read)
    del graph.value_info[:]
    return new


def replace_nodes(
    model: onnx.ModelProto,
    replacements: Mapping[int, onnx.NodeProto | Sequence[onnx.NodeProto]],
    removed: Iterable[int] = (),
    initializers: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` (by :func:`rebuild`) whose node at each index of ``replacements`` is
    replaced by the given node(s) and whose nodes at the ``removed`` indices are dropped; the
    graph order of everything else is kept."""
    removed = set(removed)
    nodes = []
    for index, node in enumerate(model.graph.node):
        if index in removed:
            continue
        new = replacements.get(index, node)
        nodes.extend([new] if isinstance(new, onnx.NodeProto) else new)
    return rebuild(model, nodes, initializers)


class NameAllocator:
    """Hands out tensor and node names not yet used in a model (nor handed out before)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self._taken = {init.name for init in graph.initializer} | {i.name for i in graph.input}
        self._taken |= {name for node in graph.node for name in (*node.output, node.name)}

    def __call__(self, base: str) -> str:
        name, index = base, 0
        while name in self._taken:
            index += 1
            name = f"{base}_{index}"
        self._taken.add(name)
        return name


def with_input_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs have the given shapes, without the value_info (the exporter's
    holds symbolic dimensions, which inference would keep)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    fixed.graph.ClearField("value_info")
    inputs = {value.name: value.type.tensor_type for value in fixed.graph.input}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ConfigError(f"{name!r} is not an input of the graph; its inputs are {sorted(inputs)}")
        tensor, shape = inputs[name], tuple(int(size) for size in shape)
        if tensor.HasField("shape"):
            declared = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
            if len(declared) != len(shape) or any(d not in (None, s) for d, s in zip(declared, shape)):
                declared_text = tuple(d.dim_value or d.dim_param for d in tensor.shape.dim)
                raise ShapeError(f"input {name!r} has the shape {declared_text}, got {shape}")
        tensor.shape.ClearField("dim")
        for size in shape:
            tensor.shape.dim.add().dim_value = size
    return fixed


def topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its nodes in an order where each runs after its inputs' producers
    (ONNX requires it; ONNX Runtime's quantizer appends Q/DQ nodes at the end). Nodes already in
    order keep their order.

    Raises:
        ValueError: the graph has a cycle or reads a tensor nothing produces.
    """
    graph = model.graph
    available = {init.name for init in graph.initializer} | {value.name for value in graph.input} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:  # sweep in graph order, emitting every node whose inputs exist: stable
        waiting = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            node = waiting[0]
            raise ValueError(
                f"cannot order the graph: {node.op_type} {node.name!r} waits on an input nothing produces"
            )
        pending = waiting
    return rebuild(model, ordered)


def dequantized_names(model: onnx.ModelProto) -> dict[str, str]:
    """Float tensor name -> the output of the ``DequantizeLinear(QuantizeLinear(tensor))`` pair
    after it, in a Q/DQ model."""
    graph = model.graph
    readers = consumers(graph)
    names = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        after = [graph.node[i] for i in readers.get(node.output[0], [])]
        if len(after) == 1 and after[0].op_type == "DequantizeLinear":
            names[node.input[0]] = after[0].output[0]
    return names
