"""The convolutions a pass may rewrite: ``Conv`` nodes whose weight and bias are constants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgevision.deploy.graph import NameAllocator, attributes, constants


@dataclass(frozen=True)
class ConstantConv:
    """A ``Conv`` with known parameters.

    ``weight`` is ``(C_out, C_in / group, kH, kW)`` and ``bias`` ``(C_out,)`` (zeros when the node
    has none), both float32.
    """

    node: onnx.NodeProto
    weight: np.ndarray
    bias: np.ndarray

    @property
    def group(self) -> int:
        return int(attributes(self.node).get("group", 1))

    def geometry(self) -> tuple:
        """Everything but the parameters that decides the output: two convs with equal geometry
        reading the same input can be run as one."""
        attrs = attributes(self.node)
        return (
            self.node.input[0],
            self.weight.shape[1:],
            tuple(attrs.get("strides", ())),
            tuple(attrs.get("pads", ())),
            tuple(attrs.get("dilations", ())),
            attrs.get("auto_pad", b"NOTSET"),
            self.group,
        )


def constant_convs(model: onnx.ModelProto) -> dict[int, ConstantConv]:
    """Index in ``graph.node`` -> the float 2-D ``Conv`` there, for those with constant parameters
    (the passes rewrite 4-D filters only)."""
    values = constants(model)
    found = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or node.input[1] not in values:
            continue
        weight = values[node.input[1]]
        has_bias = len(node.input) > 2 and node.input[2]
        if weight.dtype != np.float32 or weight.ndim != 4 or (has_bias and node.input[2] not in values):
            continue
        bias = values[node.input[2]] if has_bias else np.zeros(weight.shape[0], np.float32)
        found[index] = ConstantConv(node, weight, bias.astype(np.float32))
    return found


def conv_with(
    conv: ConstantConv,
    weight: np.ndarray,
    bias: np.ndarray,
    output: str,
    names: NameAllocator,
    new_values: dict[str, np.ndarray],
) -> onnx.NodeProto:
    """A copy of ``conv.node`` with new parameters (added to ``new_values`` under fresh names)
    writing ``output``; its attributes other than the filter count are kept."""
    base = conv.node.name or conv.node.output[0]
    weight_name, bias_name = names(f"{base}.weight"), names(f"{base}.bias")
    new_values[weight_name] = weight.astype(np.float32)
    new_values[bias_name] = bias.astype(np.float32)
    node = onnx.NodeProto()
    node.CopyFrom(conv.node)
    del node.input[:]
    node.input.extend([conv.node.input[0], weight_name, bias_name])
    del node.output[:]
    node.output.append(output)
    return node
