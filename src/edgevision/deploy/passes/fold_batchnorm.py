"""Conv + BatchNormalization folding: at inference BN is a per-channel affine map, so it goes into
the convolution's weights and bias (``W' = W * s``, ``b' = (b - mean) * s + beta``,
``s = gamma / sqrt(var + eps)``), and the BN layer disappears."""

from __future__ import annotations

import numpy as np
import onnx

from edgevision.deploy.graph import (
    NameAllocator,
    attributes,
    constants,
    consumers,
    only_reader,
    replace_nodes,
)
from edgevision.deploy.passes.conv import constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    graph = model.graph
    readers, values, names = consumers(graph), constants(model), NameAllocator(model)
    replacement: dict[int, onnx.NodeProto] = {}  # BN index -> the folded conv that takes its place
    folded_convs: set[int] = set()
    new_values: dict[str, np.ndarray] = {}
    for index, conv in constant_convs(model).items():
        bn_index = only_reader(graph, readers, conv.node.output[0])
        if bn_index is None:
            continue
        bn = graph.node[bn_index]
        if bn.op_type != "BatchNormalization" or not _is_inference_bn(bn, values):
            continue
        gamma, beta, mean, var = (values[name].astype(np.float64) for name in bn.input[1:5])
        scale = gamma / np.sqrt(var + attributes(bn).get("epsilon", 1e-5))
        weight = conv.weight * scale.reshape(-1, 1, 1, 1)
        bias = (conv.bias - mean) * scale + beta
        replacement[bn_index] = conv_with(conv, weight, bias, bn.output[0], names, new_values)
        folded_convs.add(index)
    new = replace_nodes(model, replacement, folded_convs, new_values)
    details = (
        [f"folded {len(folded_convs)} BatchNormalization into the convs before them"] if folded_convs else []
    )
    return new, PassReport.of("Conv+BN folding", model, new, details)


def _is_inference_bn(bn: onnx.NodeProto, values: dict[str, np.ndarray]) -> bool:
    """BN in inference mode (one output, statistics given as constants)."""
    return (
        len([name for name in bn.output if name]) == 1
        and not attributes(bn).get("training_mode", 0)
        and all(name in values for name in bn.input[1:5])
    )
