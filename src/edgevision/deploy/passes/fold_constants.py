"""Constant folding: nodes whose inputs are all known are evaluated once, at build time.

An exporter run without its own optimiser leaves much of this (``Shape`` of a weight, ``CastLike``
and ``Expand`` building a zero bias, ``Constant`` nodes); folding it turns them into initializers
that the later passes (BN and bias folding) can read. ``Constant`` nodes become initializers too.
Nodes are evaluated with ONNX's reference implementation (``onnx.reference``). ``CastLike``
reads only the element type of its second input, and ``Shape`` only the shape of its input, so
they fold when that type or shape is known (all of it static: a graph specialised to one input
size by :func:`edgevision.deploy.graph.with_input_shapes`), even if the tensor is an activation.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from edgevision.deploy.graph import attributes, constant_node_value, rebuild
from edgevision.deploy.passes.report import PassReport

# Never fold ops whose value is not a function of their inputs.
NONDETERMINISTIC = {
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
}
# A folded tensor larger than this many elements stays a node (as onnxscript's folder limits it):
# folding an Expand to a full activation size would bloat the file for nothing.
MAX_FOLDED_ELEMENTS = 1 << 20


def fold_constants(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """Evaluate every node whose inputs are all initializers or folded values."""
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    initial = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    known = set(initial)
    values: dict[str, np.ndarray] = {}
    elem_types, static_shapes = _types_and_static_shapes(model)
    kept: list[onnx.NodeProto] = []
    folded: Counter[str] = Counter()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            kept.append(node)
            continue
        if node.op_type == "Constant":
            values[node.output[0]] = constant_node_value(node)
            known.add(node.output[0])
            folded[node.op_type] += 1
            continue
        if node.op_type == "CastLike" and node.input[0] in known and node.input[1] in elem_types:
            node = onnx.helper.make_node(
                "Cast", [node.input[0]], list(node.output), to=elem_types[node.input[1]]
            )
        if node.op_type == "Shape" and node.input[0] in static_shapes:
            attrs = attributes(node)
            shape = static_shapes[node.input[0]][attrs.get("start", 0) : attrs.get("end")]
            values[node.output[0]] = np.array(shape, dtype=np.int64)
            known.add(node.output[0])
            folded[node.op_type] += 1
            continue
        inputs = [name for name in node.input if name]
        if node.op_type in NONDETERMINISTIC or not all(name in known for name in inputs) or not node.output:
            kept.append(node)
            continue
        feeds = {name: values[name] if name in values else initial[name] for name in inputs}
        outputs = ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
        if any(output.size > MAX_FOLDED_ELEMENTS for output in outputs):
            kept.append(node)
            continue
        for name, output in zip(node.output, outputs, strict=True):
            values[name] = output
            known.add(name)
        folded[node.op_type] += 1
    new = rebuild(model, kept, values)
    details = [f"folded {count} {op}" for op, count in folded.most_common()]
    return new, PassReport.of("constant folding", model, new, details)


def _types_and_static_shapes(model: onnx.ModelProto) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """Tensor name -> ONNX element type, and -> shape where every dimension is a number, where the
    graph or shape inference knows them."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    types = {info.name: info.type.tensor_type.elem_type for info in infos if info.type.tensor_type.elem_type}
    shapes = {}
    for info in infos:
        tensor = info.type.tensor_type
        if tensor.HasField("shape") and all(dim.HasField("dim_value") for dim in tensor.shape.dim):
            shapes[info.name] = tuple(dim.dim_value for dim in tensor.shape.dim)
    return types, shapes
