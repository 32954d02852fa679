"""Plugins: custom ONNX operators for the layers ONNX has no operator for, as TensorRT's plugins.

A plugin is a :class:`PluginSpec`: the operator ``domain::op_type`` of a version, its inputs, outputs
and attributes, how its output shapes follow from its inputs', a numpy reference implementation, and
the pure-PyTorch function it stands for. Registered with :func:`register_plugin` (the built-in ones,
in :mod:`edgevision.deploy.plugin_ops`, are registered when this module is imported), it is usable:

- at export: registering defines the plugin's torch op (``torch.library.custom_op``, e.g.
  ``torch.ops.edgevision.deform_ps_roi_pool``), which runs the PyTorch function and has a
  shape-only fake kernel for ``torch.export`` (and no autograd: train with the PyTorch function);
  :func:`translation_table` maps each torch op to one node of the plugin, for
  ``torch.onnx.export(..., dynamo=True, custom_translation_table=...)``;
- in shape inference: :func:`infer_shapes` fills the output types of plugin nodes, which ONNX's own
  shape inference cannot see into, from each spec's ``infer_shape``;
- in the ONNX reference runtime: :func:`reference_evaluator`, with an ``OpRun`` per plugin that
  calls its numpy reference;
- in ONNX Runtime: :func:`make_session`, with each plugin run as an onnxruntime-extensions Python
  operator that calls its numpy reference.

A node is a plugin node when its domain is that of a registered plugin (so an unknown op type in
such a domain is an error, and other custom domains are left to the runtime); its version is the
model's opset version of that domain, resolved as ONNX resolves operator versions: to the latest
registered version at or below it. Only the main graph is searched, not subgraphs or functions.

onnxruntime-extensions (0.15) registers Python operators in any domain (op type
``"domain::op_type"``, not only its default ``ai.onnx.contrib``), but reads only int, float (printed
to 6 digits) and string attributes, and every input it declares is required. So
:func:`make_session` runs a copy of the model in which each plugin node has its absent optional
inputs dropped, all its attributes in one JSON string attribute ``attributes`` (exact floats, and
lists), and an op type that names its version and the inputs present: ``DeformPSRoIPool_v1_110`` has
inputs 0 and 1, not 2. Each output is copied through a Python list: plugins run at numpy speed.
"""

from __future__ import annotations

import functools
import inspect
import json
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
from onnxscript.values import Op, Opset

from edgevision.errors import ConfigError, UnknownPluginError

EDGEVISION_DOMAIN = "edgevision"

Dim = int | str | None  # a size, a symbolic size's name, or unknown
Shape = tuple[Dim, ...]
AttributeKind = Literal["int", "ints", "float", "floats", "string"]

_ONNX_ATTRIBUTE_TYPES: dict[str, int] = {
    "int": onnx.AttributeProto.INT,
    "ints": onnx.AttributeProto.INTS,
    "float": onnx.AttributeProto.FLOAT,
    "floats": onnx.AttributeProto.FLOATS,
    "string": onnx.AttributeProto.STRING,
}
_TORCH_ATTRIBUTE_TYPES = {
    "int": "int",
    "ints": "int[]",
    "float": "float",
    "floats": "float[]",
    "string": "str",
}
_ONNX_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "int64": "tensor(int64)"}
_ORT_TYPES = {
    "float32": PyCustomOpDef.dt_float,
    "float64": PyCustomOpDef.dt_double,
    "int64": PyCustomOpDef.dt_int64,
}
_ORT_ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class TensorParam:
    """An input or output of a plugin: its name, numpy dtype name, and whether it may be absent."""

    name: str
    dtype: str = "float32"
    optional: bool = False


@dataclass(frozen=True)
class Attribute:
    """An attribute of a plugin: its name, kind, and default (``None``: required)."""

    name: str
    kind: AttributeKind
    default: Any = None


@dataclass(frozen=True)
class PluginSpec:
    """A custom ONNX operator and its implementations.

    Attributes:
        domain: the ONNX domain, e.g. ``"edgevision"``.
        op_type: the ONNX op type, e.g. ``"DeformPSRoIPool"``.
        version: the version the operator is introduced in (>= 1).
        inputs: the node's inputs, in order; optional ones may be absent (``""`` or omitted).
        outputs: the node's outputs, in order.
        attributes: the node's attributes.
        infer_shape: ``(input_shapes, attributes) -> output_shapes``: one shape per input (``None``
            for an absent one) and per output; dims are ints, symbolic names (kept) or ``None``
            (unknown), and at export ``torch.SymInt``, so compute with ``//``, ``*``, not ``int()``.
            Raises :class:`edgevision.errors.ShapeError` for shapes the operator does not take.
        reference: ``(*arrays, **attributes) -> arrays``, the numpy implementation; an absent input
            is ``None``.
        torch_fn: ``(*tensors, *attributes) -> tensor or tuple of tensors``, the PyTorch function the
            operator stands for, taking the inputs then the attributes, in the orders above.
        torch_name: the qualified name of the torch op that export traces, e.g.
            ``"edgevision::deform_ps_roi_pool"`` (``torch.ops.edgevision.deform_ps_roi_pool``).
    """

    domain: str
    op_type: str
    version: int
    inputs: tuple[TensorParam, ...]
    outputs: tuple[TensorParam, ...]
    attributes: tuple[Attribute, ...]
    infer_shape: Callable[[Sequence[Shape | None], Mapping[str, Any]], tuple[Shape, ...]]
    reference: Callable[..., tuple[np.ndarray, ...]]
    torch_fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]
    torch_name: str

    @property
    def key(self) -> tuple[str, str, int]:
        return self.domain, self.op_type, self.version

    def __str__(self) -> str:
        return f"{self.domain}::{self.op_type} version {self.version}"


_PLUGINS: dict[tuple[str, str, int], PluginSpec] = {}
_EXTENDED_OPTIONS: weakref.WeakSet[ort.SessionOptions] = weakref.WeakSet()  # library registered


def register_plugin(spec: PluginSpec) -> PluginSpec:
    """Add ``spec`` to the registry, define its torch op, and return it.

    Raises:
        ConfigError: a plugin of the same domain, op type and version, or of the same torch op
            name, is already registered, or ``spec`` is malformed (version, dtypes, attribute
            kinds).
    """
    if spec.key in _PLUGINS:
        raise ConfigError(f"plugin {spec} is already registered")
    if any(other.torch_name == spec.torch_name for other in _PLUGINS.values()):
        raise ConfigError(f"torch op {spec.torch_name} of plugin {spec} is already registered")
    if spec.version < 1:
        raise ConfigError(f"plugin {spec}: version must be >= 1")
    dtypes = {param.dtype for param in spec.inputs + spec.outputs} - set(_ORT_TYPES)
    if dtypes:
        raise ConfigError(f"plugin {spec}: dtypes {sorted(dtypes)} are not among {sorted(_ORT_TYPES)}")
    kinds = {attribute.kind for attribute in spec.attributes} - set(_ONNX_ATTRIBUTE_TYPES)
    if kinds:
        raise ConfigError(
            f"plugin {spec}: attribute kinds {sorted(kinds)} are not {sorted(_ONNX_ATTRIBUTE_TYPES)}"
        )
    _define_torch_op(spec)
    _PLUGINS[spec.key] = spec
    return spec


def get_plugin(domain: str, op_type: str, version: int) -> PluginSpec:
    """The registered plugin ``domain::op_type`` of exactly ``version``.

    Raises:
        UnknownPluginError: there is none (the message lists the registered ones).
    """
    spec = _PLUGINS.get((domain, op_type, version))
    if spec is None:
        raise UnknownPluginError(f"no plugin {domain}::{op_type} version {version} is registered {_known()}")
    return spec


def list_plugins() -> list[PluginSpec]:
    """Every registered plugin, sorted by domain, op type and version."""
    return [_PLUGINS[key] for key in sorted(_PLUGINS)]


def torch_op(spec: PluginSpec) -> torch._ops.OpOverload:
    """The torch op of a registered plugin, e.g. ``torch.ops.edgevision.deform_ps_roi_pool.default``."""
    namespace, name = spec.torch_name.split("::")
    return getattr(getattr(torch.ops, namespace), name).default


def translation_table() -> dict[Callable, Callable]:
    """``{torch op: ONNX translation}`` of every registered plugin, for the dynamo exporter's
    ``custom_translation_table``; each translation emits one node of the plugin's domain and
    version, with every attribute set."""
    return {torch_op(spec): _translation(spec) for spec in _PLUGINS.values()}


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with ONNX's shape inference run and the output types of plugin nodes
    filled (in ``value_info``, or in the graph output when it has no shape), alternately until
    nothing changes, so that ops downstream of a plugin get their shapes too.

    Raises:
        UnknownPluginError: a node of a plugin domain is not a registered plugin.
        ConfigError, ShapeError: a plugin node has malformed inputs or attributes, or input shapes
            its plugin does not take.
    """
    plugin_nodes = _plugin_nodes(model)
    pending = list(range(len(plugin_nodes)))
    while True:
        model = onnx.shape_inference.infer_shapes(model)
        graph = model.graph
        shapes = _known_shapes(graph)
        filled = []
        for index in pending:
            node, spec = plugin_nodes[index]
            names = _node_inputs(spec, node)
            if any(name is not None and name not in shapes for name in names):
                continue  # an input's shape is not known yet
            input_shapes = [None if name is None else shapes[name] for name in names]
            output_shapes = spec.infer_shape(input_shapes, _node_attributes(spec, node))
            for name, param, shape in zip(node.output, spec.outputs, output_shapes):
                _set_type(graph, name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(param.dtype)), shape)
            filled.append(index)
        if not filled:
            return model
        pending = [index for index in pending if index not in filled]


def reference_evaluator(model: onnx.ModelProto, **kwargs: Any) -> ReferenceEvaluator:
    """``onnx.reference.ReferenceEvaluator(model, new_ops=...)`` with the plugins the model uses;
    ``kwargs`` go to the evaluator (e.g. ``verbose``).

    Raises:
        UnknownPluginError: a node of a plugin domain is not a registered plugin.
    """
    specs = {spec.key: spec for _, spec in _plugin_nodes(model)}
    return ReferenceEvaluator(model, new_ops=[_reference_op(key) for key in specs], **kwargs)


def make_session(
    model: onnx.ModelProto,
    options: ort.SessionOptions | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    disabled_optimizers: Sequence[str] = (),
) -> ort.InferenceSession:
    """An ONNX Runtime session of ``model`` that runs its plugin nodes with their numpy reference
    (``disabled_optimizers`` are ONNX Runtime graph optimisers to leave out).

    When the model has plugin nodes, the session runs a rewritten copy (see the module docstring)
    and the onnxruntime-extensions library is registered in ``options`` (a new one if ``None``),
    once: the same options serve several calls, but must not have had it registered by the caller.

    Raises:
        UnknownPluginError: a node of a plugin domain is not a registered plugin.
        ConfigError: a plugin node has too many inputs, lacks a required one, or has malformed
            attributes.
    """
    options = options or ort.SessionOptions()
    if _plugin_nodes(model):
        model = _ort_model(model)
        if options not in _EXTENDED_OPTIONS:  # a second registration fails the session
            options.register_custom_ops_library(get_library_path())
            _EXTENDED_OPTIONS.add(options)
    return ort.InferenceSession(
        model.SerializeToString(),
        options,
        providers=list(providers),
        disabled_optimizers=list(disabled_optimizers),
    )


def plugins_used(model: onnx.ModelProto) -> list[PluginSpec]:
    """The registered plugins ``model``'s nodes need, each once, in graph order.

    Raises:
        UnknownPluginError: a node of a plugin domain is not a registered plugin.
    """
    used: dict[tuple[str, str, int], PluginSpec] = {}
    for _node, spec in _plugin_nodes(model):
        used.setdefault(spec.key, spec)
    return list(used.values())


def _known() -> str:
    return f"(registered: {', '.join(str(spec) for spec in list_plugins()) or 'none'})"


def _resolve(domain: str, op_type: str, opset_version: int) -> PluginSpec:
    """The plugin a node ``domain::op_type`` of a model with ``domain`` at ``opset_version`` is."""
    versions = [key[2] for key in _PLUGINS if key[:2] == (domain, op_type) and key[2] <= opset_version]
    if not versions:
        raise UnknownPluginError(
            f"no plugin {domain}::{op_type} of version <= {opset_version} is registered {_known()}"
        )
    return _PLUGINS[domain, op_type, max(versions)]


def _plugin_nodes(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, PluginSpec]]:
    """The plugin nodes of the main graph (the model's own protos) with their plugins."""
    domains = {key[0] for key in _PLUGINS}
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    return [
        (node, _resolve(node.domain, node.op_type, opsets.get(node.domain, 1)))
        for node in model.graph.node
        if node.domain in domains
    ]


def _node_inputs(spec: PluginSpec, node: onnx.NodeProto) -> list[str | None]:
    """The node's input names, one per input of ``spec``, ``None`` for an absent one."""
    if len(node.input) > len(spec.inputs):
        raise ConfigError(
            f"node {node.name!r} of {spec} has {len(node.input)} inputs, at most {len(spec.inputs)}"
        )
    names = [name or None for name in node.input] + [None] * (len(spec.inputs) - len(node.input))
    missing = [param.name for param, name in zip(spec.inputs, names) if name is None and not param.optional]
    if missing:
        raise ConfigError(f"node {node.name!r} of {spec} lacks the required inputs {missing}")
    return names


def _node_attributes(spec: PluginSpec, node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes as Python values (lists for ``ints`` and ``floats``), defaults filled."""
    given = {proto.name: proto for proto in node.attribute}
    unknown = sorted(set(given) - {attribute.name for attribute in spec.attributes})
    if unknown:
        raise ConfigError(f"node {node.name!r} of {spec} has unknown attributes {unknown}")
    values = {}
    for attribute in spec.attributes:
        proto = given.get(attribute.name)
        if proto is None:
            if attribute.default is None:
                raise ConfigError(f"node {node.name!r} of {spec} lacks the attribute {attribute.name!r}")
            values[attribute.name] = attribute.default
            continue
        if proto.type != _ONNX_ATTRIBUTE_TYPES[attribute.kind]:
            raise ConfigError(
                f"node {node.name!r} of {spec}: attribute {attribute.name!r} must be {attribute.kind}, got "
                f"{onnx.AttributeProto.AttributeType.Name(proto.type)}"
            )
        value = onnx.helper.get_attribute_value(proto)
        if attribute.kind == "string":
            value = value.decode()
        elif attribute.kind in ("ints", "floats"):
            value = list(value)
        values[attribute.name] = value
    return values


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


def _signature(spec: PluginSpec) -> inspect.Signature:
    """The torch op's Python signature: the inputs, then the attributes with their defaults."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [inspect.Parameter(param.name, kind) for param in spec.inputs]
        + [
            inspect.Parameter(attribute.name, kind, default=attribute.default)
            if attribute.default is not None
            else inspect.Parameter(attribute.name, kind)
            for attribute in spec.attributes
        ]
    )


def _bind(signature: inspect.Signature, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments


def _torch_schema(spec: PluginSpec) -> str:
    """E.g. ``(Tensor input, Tensor? offset, int[] output_size, float gamma=0.1) -> Tensor``."""
    inputs = [f"Tensor{'?' if param.optional else ''} {param.name}" for param in spec.inputs]
    attributes = []
    for attribute in spec.attributes:
        argument = f"{_TORCH_ATTRIBUTE_TYPES[attribute.kind]} {attribute.name}"
        if attribute.default is not None:
            argument += f"={json.dumps(attribute.default)}"
        attributes.append(argument)
    outputs = ", ".join("Tensor" for _ in spec.outputs)
    return f"({', '.join(inputs + attributes)}) -> {outputs if len(spec.outputs) == 1 else f'({outputs})'}"


def _define_torch_op(spec: PluginSpec) -> None:
    """Define ``spec.torch_name``: the PyTorch function, with a fake kernel from ``infer_shape``."""
    signature = _signature(spec)

    def fake(*args: Any, **kwargs: Any) -> torch.Tensor | tuple[torch.Tensor, ...]:
        arguments = _bind(signature, args, kwargs)
        tensors = [arguments[param.name] for param in spec.inputs]
        attributes = {attribute.name: arguments[attribute.name] for attribute in spec.attributes}
        shapes = spec.infer_shape([None if t is None else tuple(t.shape) for t in tensors], attributes)
        like = next(t for t in tensors if t is not None)
        outputs = tuple(
            like.new_empty(shape, dtype=getattr(torch, param.dtype))
            for param, shape in zip(spec.outputs, shapes)
        )
        return outputs[0] if len(outputs) == 1 else outputs

    def impl(*args: Any, **kwargs: Any) -> torch.Tensor | tuple[torch.Tensor, ...]:
        # Contiguous, as the fake outputs: a torch op's outputs must match its fake kernel's strides.
        outputs = spec.torch_fn(*args, **kwargs)
        if isinstance(outputs, torch.Tensor):
            return outputs.contiguous()
        return tuple(output.contiguous() for output in outputs)

    op = torch.library.custom_op(spec.torch_name, impl, mutates_args=(), schema=_torch_schema(spec))
    op.register_fake(fake)


def _onnx_schema(spec: PluginSpec) -> onnx.defs.OpSchema:
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
            attribute.name, onnx.defs.OpSchema.AttrType(_ONNX_ATTRIBUTE_TYPES[attribute.kind])
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


def _translation(spec: PluginSpec) -> Callable:
    signature = _signature(spec)
    op = Op(Opset(spec.domain, spec.version), spec.op_type, _onnx_schema(spec))

    def translate(*args: Any, **kwargs: Any) -> Any:
        arguments = _bind(signature, args, kwargs)
        attributes = {attribute.name: arguments[attribute.name] for attribute in spec.attributes}
        return op(*(arguments[param.name] for param in spec.inputs), **attributes)

    translate.__name__ = spec.op_type
    return translate


@functools.cache
def _reference_op(key: tuple[str, str, int]) -> type[OpRun]:
    """An ``OpRun`` subclass of a plugin for ``ReferenceEvaluator(new_ops=...)``, named as its op
    type."""
    spec = _PLUGINS[key]

    def run(self: OpRun, *arrays: np.ndarray | None, **_: Any) -> tuple[np.ndarray, ...]:
        # OpRun passes only the attributes the node sets; parse them all, with defaults, instead.
        names = _node_inputs(spec, self.onnx_node)
        padded = list(arrays) + [None] * (len(names) - len(arrays))
        return tuple(spec.reference(*padded, **_node_attributes(spec, self.onnx_node)))

    return type(spec.op_type, (OpRun,), {"op_domain": spec.domain, "_run": run})


def _ort_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose plugin nodes are onnxruntime-extensions Python operators."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node, spec in _plugin_nodes(copy):
        names = _node_inputs(spec, node)
        attributes = _node_attributes(spec, node)
        node.op_type = _ort_kernel(spec.key, tuple(name is not None for name in names))
        del node.input[:]
        node.input.extend(name for name in names if name is not None)
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute(_ORT_ATTRIBUTES, json.dumps(attributes)))
    return copy


@functools.cache
def _ort_kernel(key: tuple[str, str, int], present: tuple[bool, ...]) -> str:
    """Register the Python operator of a plugin with the inputs ``present``; return its op type."""
    spec = _PLUGINS[key]
    op_type = f"{spec.op_type}_v{spec.version}_{''.join('1' if given else '0' for given in present)}"

    def kernel(*arrays: np.ndarray, attributes: str) -> tuple[np.ndarray, ...]:
        given = iter(arrays)
        inputs = [next(given) if is_given else None for is_given in present]
        return tuple(spec.reference(*inputs, **json.loads(attributes)))

    onnx_op(
        op_type=f"{spec.domain}::{op_type}",
        inputs=[_ORT_TYPES[param.dtype] for param, given in zip(spec.inputs, present) if given],
        outputs=[_ORT_TYPES[param.dtype] for param in spec.outputs],
        attrs={_ORT_ATTRIBUTES: PyCustomOpDef.dt_string},
    )(kernel)
    return op_type


# The built-in plugins register themselves on import; last, as they use the definitions above.
from edgevision.deploy import plugin_ops as _plugin_ops  # noqa: E402, F401
