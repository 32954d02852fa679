"""Plugins in the ONNX reference runtime: an ``OpRun`` per plugin that calls its numpy reference."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from edgevision.deploy.plugins.registry import get_plugin, node_attributes, node_inputs, plugin_nodes


def reference_evaluator(model: onnx.ModelProto, **kwargs: Any) -> ReferenceEvaluator:
    """``onnx.reference.ReferenceEvaluator(model, new_ops=...)`` with the plugins the model uses;
    ``kwargs`` go to the evaluator (e.g. ``verbose``).

    Raises:
        UnknownPluginError: a node of a plugin domain is not a registered plugin.
    """
    specs = {spec.key: spec for _, spec in plugin_nodes(model)}
    return ReferenceEvaluator(model, new_ops=[_reference_op(key) for key in specs], **kwargs)


@functools.cache
def _reference_op(key: tuple[str, str, int]) -> type[OpRun]:
    """An ``OpRun`` subclass of a plugin for ``ReferenceEvaluator(new_ops=...)``, named as its op
    type."""
    spec = get_plugin(*key)

    def run(self: OpRun, *arrays: np.ndarray | None, **_: Any) -> tuple[np.ndarray, ...]:
        # OpRun passes only the attributes the node sets; parse them all, with defaults, instead.
        names = node_inputs(spec, self.onnx_node)
        padded = list(arrays) + [None] * (len(names) - len(arrays))
        return tuple(spec.reference(*padded, **node_attributes(spec, self.onnx_node)))

    return type(spec.op_type, (OpRun,), {"op_domain": spec.domain, "_run": run})
