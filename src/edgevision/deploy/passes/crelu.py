"""C.ReLU without its ``Neg`` + ``Concat``: two exact rewrites of ``Concat(y, Neg(y))``, ``y`` a conv.

FaceBoxes' RDCL (Sec. 3.1) uses C.ReLU to halve the filters its first two convolutions compute.
The ``Neg`` and ``Concat`` are two full memory passes over the largest activations of the network,
and in an INT8 graph each is also a dequantise / quantise round trip (ONNX Runtime has no
quantised ``Neg``).

- :func:`fuse_crelu`: one convolution with the filters ``[W; -W]`` and bias ``[b; -b]`` (convolution
  is linear). It doubles the conv's work, which on this CPU with ONNX Runtime 1.32 costs more than
  it saves, so it is not a default.
- :func:`crelu_as_conv1x1`: ``y`` is kept and a 1x1 convolution with the filters ``[I; -I]`` (no
  bias) writes ``[y; -y]``. In fp32 that is extra work; in INT8 it is one ``QLinearConv`` that also
  takes the following ``Relu`` into its output range, in place of ``Neg``, a quantise, a dequantise
  and a ``QLinearConcat``, which made FaceBoxes' int8 plan faster (docs/benchmarks.md). The INT8
  pass list runs it.

Either way the following ``Relu`` is left to the next fusion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import onnx

from edgevision.deploy.graph import NameAllocator, attributes, consumers, replace_nodes
from edgevision.deploy.passes.conv import ConstantConv, constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport


class CReLU(NamedTuple):
    """Where ``Concat(y, Neg(y))`` reads a constant conv's output ``y``: node indices in the graph."""

    conv_index: int
    conv: ConstantConv
    neg_index: int
    concat_index: int


def crelu_sites(model: onnx.ModelProto) -> Iterator[CReLU]:
    """Every C.ReLU of ``model`` on a constant, ungrouped convolution."""
    graph = model.graph
    readers = consumers(graph)
    outputs = {output.name for output in graph.output}
    for index, conv in constant_convs(model).items():
        out = conv.node.output[0]
        pair = sorted(readers.get(out, []))
        if conv.group != 1 or len(pair) != 2 or out in outputs:
            continue
        neg, concat = graph.node[pair[0]], graph.node[pair[1]]  # Neg comes first: Concat reads it
        if _is_crelu(neg, concat, out, readers, outputs):
            yield CReLU(index, conv, pair[0], pair[1])


def fuse_crelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    names = NameAllocator(model)
    replacement: dict[int, onnx.NodeProto] = {}  # Concat index -> the doubled conv
    removed: set[int] = set()
    new_values: dict[str, np.ndarray] = {}
    details = []
    for site in crelu_sites(model):
        conv = site.conv
        replacement[site.concat_index] = conv_with(
            conv,
            np.concatenate([conv.weight, -conv.weight]),
            np.concatenate([conv.bias, -conv.bias]),
            model.graph.node[site.concat_index].output[0],
            names,
            new_values,
        )
        removed.update((site.conv_index, site.neg_index))
        details.append(
            f"{conv.node.name or conv.node.output[0]}: Conv+Neg+Concat -> one Conv of "
            f"{2 * conv.weight.shape[0]} filters"
        )
    new = replace_nodes(model, replacement, removed, new_values)
    return new, PassReport.of("C.ReLU fusion", model, new, details)


def crelu_as_conv1x1(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    names = NameAllocator(model)
    replacement: dict[int, onnx.NodeProto] = {}  # Concat index -> the [I; -I] conv
    removed: set[int] = set()
    new_values: dict[str, np.ndarray] = {}
    details = []
    for site in crelu_sites(model):
        y = site.conv.node.output[0]
        channels = site.conv.weight.shape[0]
        identity = np.eye(channels, dtype=np.float32)
        weight = names(f"{y}.crelu_weight")
        new_values[weight] = np.concatenate([identity, -identity])[:, :, None, None]
        replacement[site.concat_index] = onnx.helper.make_node(
            "Conv",
            [y, weight],
            [model.graph.node[site.concat_index].output[0]],
            name=names(f"{site.conv.node.name or y}_crelu"),
            kernel_shape=[1, 1],
        )
        removed.add(site.neg_index)
        details.append(f"{site.conv.node.name or y}: Neg+Concat -> 1x1 Conv {channels} -> {2 * channels}")
    new = replace_nodes(model, replacement, removed, new_values)
    return new, PassReport.of("C.ReLU as 1x1 conv", model, new, details)


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
