"""Horizontal fusion: sibling convolutions that read the same tensor with the same geometry
(kernel, stride, padding, dilation) run as one wider convolution followed by a ``Split``.

TensorRT merges such layers so one kernel reads the input once; FaceBoxes' Inception modules
start with three 1x1 convs on one input, and its heads put a box and a class conv on each level.
Only ungrouped convs are merged (the filters of a grouped conv are tied to its channel groups).
When every sibling is followed by its own ``Relu``, one ``Relu`` goes between the merged conv and
the ``Split`` (``Relu`` is elementwise, so it commutes with the split), which keeps the
conv + ReLU pair a vertical fusion group.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx

from edgevision.deploy.graph import NameAllocator, consumers, only_reader, replace_nodes
from edgevision.deploy.passes.conv import ConstantConv, constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport

# Split takes its sizes as an input from opset 13 on.
MIN_OPSET = 13


def fuse_horizontal(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        return model, PassReport.of(
            "horizontal fusion", model, model, [f"skipped: opset {opset} < {MIN_OPSET}"]
        )
    graph = model.graph
    names, readers = NameAllocator(model), consumers(graph)
    siblings: dict[tuple, list[int]] = defaultdict(list)
    convs = constant_convs(model)
    for index, conv in convs.items():
        if conv.group == 1:
            siblings[conv.geometry()].append(index)
    inserted: dict[int, list[onnx.NodeProto]] = {}  # first sibling's index -> conv + split
    removed: set[int] = set()
    new_values: dict[str, np.ndarray] = {}
    details = []
    for members in siblings.values():
        if len(members) < 2:
            continue
        relus = [only_reader(graph, readers, convs[i].node.output[0]) for i in members]
        if any(r is None or graph.node[r].op_type != "Relu" for r in relus):
            relus = []
        inserted[members[0]] = _merge(
            [convs[i] for i in members], [graph.node[r] for r in relus], names, new_values
        )
        removed.update([*members[1:], *relus])
        details.append(
            "merged "
            + " + ".join(convs[i].node.name or convs[i].node.output[0] for i in members)
            + " -> Conv + Split"
        )
    new = replace_nodes(model, inserted, removed, new_values)
    return new, PassReport.of("horizontal fusion", model, new, details)


def _merge(
    members: list[ConstantConv],
    relus: list[onnx.NodeProto],
    names: NameAllocator,
    new_values: dict[str, np.ndarray],
) -> list[onnx.NodeProto]:
    """One conv with every member's filters (and one ``Relu`` for the members' ``relus``, if
    given), and a ``Split`` back to the members' outputs (or their ReLUs' outputs)."""
    first = members[0]
    merged_output = names(f"{first.node.output[0]}_merged")
    conv = conv_with(
        first,
        np.concatenate([m.weight for m in members]),
        np.concatenate([m.bias for m in members]),
        merged_output,
        names,
        new_values,
    )
    nodes, split_input, outputs = [conv], merged_output, [m.node.output[0] for m in members]
    if relus:
        split_input = names(f"{merged_output}_relu")
        nodes.append(onnx.helper.make_node("Relu", [merged_output], [split_input], name=names(split_input)))
        outputs = [relu.output[0] for relu in relus]
    sizes_name = names(f"{merged_output}_split")
    new_values[sizes_name] = np.array([m.weight.shape[0] for m in members], dtype=np.int64)
    nodes.append(
        onnx.helper.make_node(
            "Split", [split_input, sizes_name], outputs, name=names(f"{merged_output}_split_node"), axis=1
        )
    )
    return nodes
