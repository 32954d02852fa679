"""Concat elimination analysis: which ``Concat`` layers need no copy, because each input can be
written by its producer straight into its slice of the output buffer (TensorRT's "concat
elimination").

A concat qualifies when every dimension before its axis is 1 (so each input is one contiguous
block of the output: channel concats at batch 1; a symbolic batch dimension, as in a dynamic-batch
plan, counts as 1, since each image's slice is such a block and a batch is N of them at a fixed
stride, which TensorRT's producers write the same way), and each input is an activation written by a
node, read by no other concat, and used once in this one. The pass reports; the memory planner
and the runtime own the buffers.
"""

from __future__ import annotations

import onnx

from edgevision.deploy.graph import attributes, consumers, producers
from edgevision.deploy.passes.report import PassReport

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def in_place_concats(model: onnx.ModelProto) -> dict[str, str]:
    """Concat output name -> "in place" or the reason it needs a copy, for the concats of float
    activations of known rank (integer concats build shapes: a few bytes, not worth a buffer)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    shapes = {
        info.name: [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
        for info in infos
        if info.type.tensor_type.elem_type in FLOAT_TYPES and info.type.tensor_type.shape.dim
    }
    graph = model.graph
    readers, writers = consumers(graph), producers(graph)
    verdicts = {}
    for index, node in enumerate(graph.node):
        if node.op_type == "Concat" and node.output[0] in shapes:
            verdicts[node.output[0]] = _verdict(index, shapes.get(node.output[0]), readers, writers, graph)
    return verdicts


def _verdict(
    index: int,
    shape: list[int | None],
    readers: dict[str, list[int]],
    writers: dict[str, int],
    graph: onnx.GraphProto,
) -> str:
    node = graph.node[index]
    axis = attributes(node)["axis"] % len(shape)
    if any(dim != 1 and (position, dim) != (0, None) for position, dim in enumerate(shape[:axis])):
        return (
            "copy: the inputs are not contiguous blocks of the output (a dimension before the axis is not 1)"
        )
    if len(set(node.input)) != len(node.input):
        return "copy: an input is used twice"
    for name in node.input:
        if name not in writers:
            return f"copy: {name} is a graph input or a constant"
        if any(graph.node[i].op_type == "Concat" and i != index for i in readers[name]):
            return f"copy: {name} also feeds another concat"
    return "in place"


def analyse_concats(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    verdicts = in_place_concats(model)
    in_place = sum(verdict == "in place" for verdict in verdicts.values())
    details = [f"{in_place} of {len(verdicts)} concats can be written in place"]
    details += [f"{name}: {verdict}" for name, verdict in verdicts.items() if verdict != "in place"]
    return model, PassReport.of("concat elimination", model, model, details)
