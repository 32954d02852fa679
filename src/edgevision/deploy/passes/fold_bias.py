"""Bias folding: ``Add(Conv(x), c)`` with a per-channel (or scalar) constant ``c`` becomes the
convolution's own bias, so the addition costs nothing (the conv kernel adds a bias anyway)."""

from __future__ import annotations

import numpy as np
import onnx

from edgevision.deploy.graph import NameAllocator, constants, consumers, only_reader, replace_nodes
from edgevision.deploy.passes.conv import constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport


def fold_bias(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    graph = model.graph
    readers, values, names = consumers(graph), constants(model), NameAllocator(model)
    replacement: dict[int, onnx.NodeProto] = {}  # Add index -> the conv that takes its place
    folded_convs: set[int] = set()
    new_values: dict[str, np.ndarray] = {}
    for index, conv in constant_convs(model).items():
        add_index = only_reader(graph, readers, conv.node.output[0])
        if add_index is None or graph.node[add_index].op_type != "Add":
            continue
        add = graph.node[add_index]
        others = [name for name in add.input if name != conv.node.output[0]]
        if len(others) != 1 or others[0] not in values:
            continue
        channel_bias = per_channel(values[others[0]], conv.weight.shape[0])
        if channel_bias is None:
            continue
        replacement[add_index] = conv_with(
            conv, conv.weight, conv.bias + channel_bias, add.output[0], names, new_values
        )
        folded_convs.add(index)
    new = replace_nodes(model, replacement, folded_convs, new_values)
    details = [f"folded {len(folded_convs)} Add into the convs before them"] if folded_convs else []
    return new, PassReport.of("bias folding", model, new, details)


def per_channel(constant: np.ndarray, channels: int) -> np.ndarray | None:
    """``(channels,)`` values of a constant added to an NCHW tensor of ``channels`` channels, or
    None when it is not one value per channel (a ``(C,)`` constant broadcasts along W, not C)."""
    if constant.ndim > 4 or not np.issubdtype(constant.dtype, np.floating):
        return None
    shape = (1,) * (4 - constant.ndim) + constant.shape
    if shape[0] != 1 or shape[2:] != (1, 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(constant.reshape(-1), (channels,)).astype(np.float32)
