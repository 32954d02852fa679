"""Average pool into the convolution after it: ``Conv1x1(AvgPool_kxk(x))`` is one ``kxk`` conv
whose filters are the 1x1 filters spread evenly over the window (``W / k^2`` at every tap).

Exact when the pool has stride 1 and counts its zero padding (``count_include_pad=1``, PyTorch's
default) and the conv is 1x1, stride 1, unpadded: both are then linear maps of the same zero-padded
window. FaceBoxes' Inception branch ``avg_pool 3x3 -> conv 1x1`` is this; in INT8 the pool is a
``QLinearAveragePool``, a slow kernel (the step table in docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import onnx

from edgevision.deploy.graph import NameAllocator, attributes, consumers, only_reader, replace_nodes
from edgevision.deploy.passes.conv import constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport


def fold_avgpool_into_conv(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    graph = model.graph
    readers, names = consumers(graph), NameAllocator(model)
    convs = constant_convs(model)
    replacement: dict[int, onnx.NodeProto] = {}  # conv index -> the kxk conv reading the pool's input
    removed: set[int] = set()
    new_values: dict[str, np.ndarray] = {}
    details = []
    for index, pool in enumerate(graph.node):
        window = _exact_window(pool)
        if window is None:
            continue
        conv_index = only_reader(graph, readers, pool.output[0])
        conv = convs.get(conv_index) if conv_index is not None else None
        if conv is None or conv.weight.shape[2:] != (1, 1) or not _is_pointwise(conv.node) or conv.group != 1:
            continue
        (k_h, k_w), pads = window
        weight = np.repeat(np.repeat(conv.weight, k_h, axis=2), k_w, axis=3) / (k_h * k_w)
        node = conv_with(conv, weight, conv.bias, conv.node.output[0], names, new_values)
        node.input[0] = pool.input[0]
        _set_ints(node, "kernel_shape", [k_h, k_w])
        _set_ints(node, "pads", pads)
        replacement[conv_index] = node
        removed.add(index)
        details.append(f"{pool.name or pool.output[0]} + {conv.node.name}: one {k_h}x{k_w} Conv")
    new = replace_nodes(model, replacement, removed, new_values)
    return new, PassReport.of("AvgPool+Conv folding", model, new, details)


def _exact_window(pool: onnx.NodeProto) -> tuple[tuple[int, int], list[int]] | None:
    """``((k_h, k_w), pads)`` of a stride-1 ``AveragePool`` that counts its padding, else None."""
    if pool.op_type != "AveragePool" or pool.domain not in ("", "ai.onnx"):
        return None
    attrs = attributes(pool)
    kernel = list(attrs.get("kernel_shape", []))
    exact = (
        len(kernel) == 2
        and list(attrs.get("strides", [1, 1])) == [1, 1]
        and attrs.get("count_include_pad", 0) == 1
        and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        and not attrs.get("ceil_mode", 0)
        and list(attrs.get("dilations", [1, 1])) == [1, 1]
    )
    return ((kernel[0], kernel[1]), list(attrs.get("pads", [0, 0, 0, 0]))) if exact else None


def _is_pointwise(conv: onnx.NodeProto) -> bool:
    """Stride 1, no padding, no dilation: with a 1x1 filter, a per-pixel linear map."""
    attrs = attributes(conv)
    return (
        list(attrs.get("strides", [1, 1])) == [1, 1]
        and list(attrs.get("pads", [0, 0, 0, 0])) == [0, 0, 0, 0]
        and list(attrs.get("dilations", [1, 1])) == [1, 1]
        and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    )


def _set_ints(node: onnx.NodeProto, name: str, values: list[int]) -> None:
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(onnx.helper.make_attribute(name, values))
