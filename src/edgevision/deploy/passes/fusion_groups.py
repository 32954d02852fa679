"""Vertical fusion groups: the chains one kernel can run (Conv + bias + ReLU/Clip, and Conv whose
output is added to a residual before the optional ReLU), as TensorRT's builder fuses them.

This pass is an analysis: it leaves the graph as it is and lists the groups. The kernel fusion
itself is the runtime's (ONNX Runtime fuses Conv with its activation into ``FusedConv``; the
tests check that it fuses the groups listed here), so the plan stays a standard ONNX model that
every backend reads. Bias folding must run before, so each group's bias is already in the conv.
"""

from __future__ import annotations

import onnx

from edgevision.deploy.graph import consumers, only_reader
from edgevision.deploy.passes.report import PassReport

ACTIVATIONS = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh"}


def fusion_groups(model: onnx.ModelProto) -> list[tuple[str, ...]]:
    """Each group as the op types of its chain, e.g. ``("Conv", "Relu")`` or
    ``("Conv", "Add", "Relu")``; one group per Conv that has something to fuse."""
    graph = model.graph
    readers = consumers(graph)
    groups = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        chain, tail = [node.op_type], node
        nxt = only_reader(graph, readers, tail.output[0])
        if nxt is not None and graph.node[nxt].op_type == "Add":
            tail = graph.node[nxt]
            chain.append("Add")
            nxt = only_reader(graph, readers, tail.output[0])
        if nxt is not None and graph.node[nxt].op_type in ACTIVATIONS:
            chain.append(graph.node[nxt].op_type)
        if len(chain) > 1:
            groups.append(tuple(chain))
    return groups


def find_fusion_groups(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    groups = fusion_groups(model)
    kinds: dict[str, int] = {}
    for group in groups:
        kinds["+".join(group)] = kinds.get("+".join(group), 0) + 1
    details = [f"{count} x {kind}" for kind, count in sorted(kinds.items())]
    return model, PassReport.of("vertical fusion groups", model, model, details)
