"""A plugin in ONNX's terms: its operator schema (what the exporter builds its node from) and shape
inference through plugin nodes, which ONNX's own inference cannot see into."""

from __future__ import annotations

import numpy as np
import onnx

from edgevision.deploy.plugins.registry import node_attributes, node_inputs, plugin_nodes
from edgevision.deploy.plugins.spec import ONNX_ATTRIBUTE_TYPES, Dim, PluginSpec, Shape, TensorParam

_ONNX_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "int64": "tensor(int64)"}


def onnx_schema(spec: PluginSpec) -> onnx.defs.OpSchema:
    """The node's ONNX schema, which the exporter's op recorder builds the node from."""
    option = onnx.defs.OpSchema.FormalParameterOption

    def formal(param: TensorParam) -> onnx.defs.OpSchema.FormalParameter:
        return onnx.defs.OpSchema.FormalParameter(
            param.name,
            _ONNX_TYPES[param.dtype],
            param_option=option.Optional if param.optional else option.Single,
        )

    attributes = [
        onnx.defs.OpSchema.Attribute(
            attribute.name, onnx.helper.make_attribute(attribute.name, attribute.default)
        )
        if attribute.default is not None
        else onnx.defs.OpSchema.Attribute(
            attribute.name, onnx.defs.OpSchema.AttrType(ONNX_ATTRIBUTE_TYPES[attribute.kind])
        )
        for attribute in spec.attributes
    ]
    return onnx.defs.OpSchema(
        spec.op_type,
        spec.domain,
        spec.version,
        inputs=[formal(param) for param in spec.inputs],
        outputs=[formal(param) for param in spec.outputs],
        attributes=attributes,
    )


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with ONNX's shape inference run and the output types of plugin nodes
    filled (in ``value_info``, or in the graph output when it has no shape), alternately until
    nothing changes, so that ops downstream of a plugin get their shapes too.

    Raises:
        UnknownPluginError: a node of a plugin domain is not a registered plugin.
        ConfigError, ShapeError: a plugin node has malformed inputs or attributes, or input shapes
            its plugin does not take.
    """
    nodes = plugin_nodes(model)
    pending = list(range(len(nodes)))
    while True:
        model = onnx.shape_inference.infer_shapes(model)
        graph = model.graph
        shapes = _known_shapes(graph)
        filled = []
        for index in pending:
            node, spec = nodes[index]
            names = node_inputs(spec, node)
            if any(name is not None and name not in shapes for name in names):
                continue  # an input's shape is not known yet
            input_shapes = [None if name is None else shapes[name] for name in names]
            output_shapes = spec.infer_shape(input_shapes, node_attributes(spec, node))
            for name, param, shape in zip(node.output, spec.outputs, output_shapes):
                _set_type(graph, name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(param.dtype)), shape)
            filled.append(index)
        if not filled:
            return model
        pending = [index for index in pending if index not in filled]


def _known_shapes(graph: onnx.GraphProto) -> dict[str, Shape]:
    """Shapes of the graph's values whose rank is known: initializers, inputs, value_info, outputs."""
    shapes: dict[str, Shape] = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        if value.type.tensor_type.HasField("shape"):
            shapes[value.name] = tuple(_dim(dim) for dim in value.type.tensor_type.shape.dim)
    return shapes


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param if dim.HasField("dim_param") else None


def _set_type(graph: onnx.GraphProto, name: str, elem_type: int, shape: Shape) -> None:
    """Give ``name`` a tensor type: in its graph output if it is one without a shape, else in
    ``value_info`` (replacing any entry)."""
    value = onnx.helper.make_tensor_value_info(name, elem_type, shape)
    for output in graph.output:
        if output.name == name:
            if not output.type.tensor_type.HasField("shape"):
                output.type.CopyFrom(value.type)
            return
    kept = [info for info in graph.value_info if info.name != name]
    del graph.value_info[:]
    graph.value_info.extend([*kept, value])
