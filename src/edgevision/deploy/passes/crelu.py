"""C.ReLU as one convolution: ``Concat(conv(x), Neg(conv(x)))`` equals a convolution with the
filters ``[W; -W]`` and bias ``[b; -b]``, because convolution is linear.

FaceBoxes' RDCL (Sec. 3.1) uses C.ReLU to halve the filters its first two convolutions compute,
which pays off where a conv costs more than the ``Neg`` and ``Concat`` memory passes. Measured on
this CPU with ONNX Runtime 1.32 it does not (the doubled conv is slower), so the builder does not
run this pass by default; it is here for runtimes where it does pay. The following ``Relu`` is
left to the next fusion.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgevision.deploy.graph import NameAllocator, attributes, consumers, replace_nodes
from edgevision.deploy.passes.conv import constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport


def fuse_crelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    graph = model.graph
    readers, names = consumers(graph), NameAllocator(model)
    outputs = {output.name for output in graph.output}
    replacement: dict[int, onnx.NodeProto] = {}  # Concat index -> the doubled conv
    removed: set[int] = set()
    new_values: dict[str, np.ndarray] = {}
    details = []
    for index, conv in constant_convs(model).items():
        out = conv.node.output[0]
        pair = sorted(readers.get(out, []))
        if conv.group != 1 or len(pair) != 2 or out in outputs:
            continue
        neg, concat = graph.node[pair[0]], graph.node[pair[1]]  # Neg comes first: Concat reads it
        if not _is_crelu(neg, concat, out, readers, outputs):
            continue
        replacement[pair[1]] = conv_with(
            conv,
            np.concatenate([conv.weight, -conv.weight]),
            np.concatenate([conv.bias, -conv.bias]),
            concat.output[0],
            names,
            new_values,
        )
        removed.update((index, pair[0]))
        details.append(
            f"{conv.node.name or out}: Conv+Neg+Concat -> one Conv of {2 * conv.weight.shape[0]} filters"
        )
    new = replace_nodes(model, replacement, removed, new_values)
    return new, PassReport.of("C.ReLU fusion", model, new, details)


def _is_crelu(
    neg: onnx.NodeProto, concat: onnx.NodeProto, out: str, readers: dict[str, list[int]], outputs: set[str]
) -> bool:
    """``neg = Neg(out)`` read only by ``concat = Concat(out, neg)`` on the channel axis."""
    return (
        neg.op_type == "Neg"
        and concat.op_type == "Concat"
        and list(concat.input) == [out, neg.output[0]]
        and attributes(concat).get("axis") in (1, -3)
        and len(readers.get(neg.output[0], [])) == 1
        and neg.output[0] not in outputs
    )
