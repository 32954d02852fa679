"""Plugins: custom ONNX operators for the layers ONNX has no operator for, as TensorRT's plugins.

A plugin is a :class:`PluginSpec` (:mod:`.spec`): the operator ``domain::op_type`` of a version, its
inputs, outputs and attributes, how its output shapes follow from its inputs', a numpy reference
implementation, and the pure-PyTorch function it stands for. Registered with
:func:`register_plugin` (the built-in ones, :mod:`.deform_roi_pool`, are registered when this
package is imported), it is usable:

- at export (:mod:`.torch_op`): registering defines the plugin's torch op (e.g.
  ``torch.ops.edgevision.deform_ps_roi_pool``); :func:`translation_table` maps each torch op to one
  node of the plugin, for ``torch.onnx.export(..., dynamo=True, custom_translation_table=...)``;
- in shape inference (:mod:`.schema`): :func:`infer_shapes` fills the output types of plugin nodes
  from each spec's ``infer_shape``;
- in the ONNX reference runtime (:mod:`.reference`): :func:`reference_evaluator`;
- in ONNX Runtime (:mod:`.onnxruntime_kernels`): :func:`make_session`.

Which nodes are plugin nodes, and of which version, is the registry's (:mod:`.registry`).
"""

from edgevision.deploy.plugins import deform_roi_pool
from edgevision.deploy.plugins.onnxruntime_kernels import make_session
from edgevision.deploy.plugins.reference import reference_evaluator
from edgevision.deploy.plugins.registry import add, check_new, get_plugin, list_plugins, plugins_used
from edgevision.deploy.plugins.schema import infer_shapes
from edgevision.deploy.plugins.spec import EDGEVISION_DOMAIN, Attribute, PluginSpec, TensorParam
from edgevision.deploy.plugins.torch_op import define_torch_op, torch_op, translation_table


def register_plugin(spec: PluginSpec) -> PluginSpec:
    """Add ``spec`` to the registry, define its torch op, and return it.

    Raises:
        ConfigError: a plugin of the same domain, op type and version, or of the same torch op
            name, is already registered, or ``spec`` is malformed (version, dtypes, attribute
            kinds).
    """
    check_new(spec)
    define_torch_op(spec)
    add(spec)
    return spec


for _builtin in (deform_roi_pool.DEFORM_ROI_POOL, deform_roi_pool.DEFORM_PS_ROI_POOL):
    register_plugin(_builtin)

__all__ = [
    "EDGEVISION_DOMAIN",
    "Attribute",
    "PluginSpec",
    "TensorParam",
    "get_plugin",
    "infer_shapes",
    "list_plugins",
    "make_session",
    "plugins_used",
    "reference_evaluator",
    "register_plugin",
    "torch_op",
    "translation_table",
]
