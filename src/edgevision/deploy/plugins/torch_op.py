"""A plugin in PyTorch's terms: its torch op (``torch.library.custom_op``: the PyTorch function, and a
shape-only fake kernel for ``torch.export``; no autograd: train with the PyTorch function), and the
translation of that op into one plugin node for the dynamo ONNX exporter."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from onnxscript.values import Op, Opset

from edgevision.deploy.plugins.registry import list_plugins
from edgevision.deploy.plugins.schema import onnx_schema
from edgevision.deploy.plugins.spec import PluginSpec

TORCH_ATTRIBUTE_TYPES = {
    "int": "int",
    "ints": "int[]",
    "float": "float",
    "floats": "float[]",
    "string": "str",
}


def torch_op(spec: PluginSpec) -> torch._ops.OpOverload:
    """The torch op of a registered plugin, e.g. ``torch.ops.edgevision.deform_ps_roi_pool.default``."""
    namespace, name = spec.torch_name.split("::")
    return getattr(getattr(torch.ops, namespace), name).default


def translation_table() -> dict[Callable, Callable]:
    """``{torch op: ONNX translation}`` of every registered plugin, for the dynamo exporter's
    ``custom_translation_table``; each translation emits one node of the plugin's domain and
    version, with every attribute set."""
    return {torch_op(spec): _translation(spec) for spec in list_plugins()}


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
        argument = f"{TORCH_ATTRIBUTE_TYPES[attribute.kind]} {attribute.name}"
        if attribute.default is not None:
            argument += f"={json.dumps(attribute.default)}"
        attributes.append(argument)
    outputs = ", ".join("Tensor" for _ in spec.outputs)
    return f"({', '.join(inputs + attributes)}) -> {outputs if len(spec.outputs) == 1 else f'({outputs})'}"


def define_torch_op(spec: PluginSpec) -> None:
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


def _translation(spec: PluginSpec) -> Callable:
    signature = _signature(spec)
    op = Op(Opset(spec.domain, spec.version), spec.op_type, onnx_schema(spec))

    def translate(*args: Any, **kwargs: Any) -> Any:
        arguments = _bind(signature, args, kwargs)
        attributes = {attribute.name: arguments[attribute.name] for attribute in spec.attributes}
        return op(*(arguments[param.name] for param in spec.inputs), **attributes)

    translate.__name__ = spec.op_type
    return translate
