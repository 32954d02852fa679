"""Dead-layer elimination: drop nodes no graph output depends on, and no-op layers.

Exported graphs carry symbolic-shape arithmetic and copies (``Identity`` for ``clone``,
``Dropout`` at inference) that compute nothing the outputs need; TensorRT's builder removes such
"unused layers" first. An ``Identity`` is removed by rewiring its readers to its input, unless its
output is a graph output (the name is part of the model's interface).
"""

from __future__ import annotations

from collections import Counter

import onnx

from edgevision.deploy.graph import graph_output_names, rebuild
from edgevision.deploy.passes.report import PassReport

NO_OP_TYPES = {"Identity", "Dropout"}


def eliminate_dead_layers(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    graph = model.graph
    outputs = graph_output_names(graph)
    # Rewire the readers of a no-op's output to its input (a chain of no-ops resolves in order).
    alias: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    removed: Counter[str] = Counter()
    for original in graph.node:
        node = onnx.NodeProto()
        node.CopyFrom(original)
        for index, name in enumerate(node.input):
            node.input[index] = alias.get(name, name)
        if _is_no_op(node) and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
            removed[node.op_type] += 1
            continue
        nodes.append(node)
    needed = set(outputs)
    live: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(name in needed for name in node.output):
            live.append(node)
            needed.update(name for name in node.input if name)
        else:
            removed[node.op_type] += 1
    live.reverse()
    new = rebuild(model, live)
    details = [f"removed {count} {op}" for op, count in removed.most_common()]
    return new, PassReport.of("dead-layer elimination", model, new, details)


def _is_no_op(node: onnx.NodeProto) -> bool:
    if node.op_type not in NO_OP_TYPES or node.domain not in ("", "ai.onnx"):
        return False
    # Dropout's optional mask output makes it more than a copy.
    return len([name for name in node.output if name]) == 1
