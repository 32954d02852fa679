"""Plugins in ONNX Runtime: each plugin node run as an onnxruntime-extensions Python operator that
calls its numpy reference.

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
import json
import weakref
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op

from edgevision.deploy.plugins.registry import get_plugin, node_attributes, node_inputs, plugin_nodes

_ORT_TYPES = {
    "float32": PyCustomOpDef.dt_float,
    "float64": PyCustomOpDef.dt_double,
    "int64": PyCustomOpDef.dt_int64,
}
_ORT_ATTRIBUTES = "attributes"
_EXTENDED_OPTIONS: weakref.WeakSet[ort.SessionOptions] = weakref.WeakSet()  # library registered


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
    if plugin_nodes(model):
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


def _ort_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose plugin nodes are onnxruntime-extensions Python operators."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node, spec in plugin_nodes(copy):
        names = node_inputs(spec, node)
        attributes = node_attributes(spec, node)
        node.op_type = _ort_kernel(spec.key, tuple(name is not None for name in names))
        del node.input[:]
        node.input.extend(name for name in names if name is not None)
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute(_ORT_ATTRIBUTES, json.dumps(attributes)))
    return copy


@functools.cache
def _ort_kernel(key: tuple[str, str, int], present: tuple[bool, ...]) -> str:
    """Register the Python operator of a plugin with the inputs ``present``; return its op type."""
    spec = get_plugin(*key)
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
