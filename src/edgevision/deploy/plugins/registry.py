"""The plugin registry: registered :class:`.spec.PluginSpec` by ``(domain, op_type, version)``, and
which plugin each node of a model is.

A node is a plugin node when its domain is that of a registered plugin (so an unknown op type in
such a domain is an error, and other custom domains are left to the runtime); its version is the
model's opset version of that domain, resolved as ONNX resolves operator versions: to the latest
registered version at or below it. Only the main graph is searched, not subgraphs or functions.
"""

from __future__ import annotations

from typing import Any

import onnx

from edgevision.deploy.plugins.spec import DTYPES, ONNX_ATTRIBUTE_TYPES, PluginSpec
from edgevision.errors import ConfigError, UnknownPluginError

_PLUGINS: dict[tuple[str, str, int], PluginSpec] = {}


def check_new(spec: PluginSpec) -> None:
    """Raise :class:`ConfigError` unless ``spec`` can be registered: a plugin of the same domain, op
    type and version, or of the same torch op name, is already registered, or ``spec`` is malformed
    (version, dtypes, attribute kinds)."""
    if spec.key in _PLUGINS:
        raise ConfigError(f"plugin {spec} is already registered")
    if any(other.torch_name == spec.torch_name for other in _PLUGINS.values()):
        raise ConfigError(f"torch op {spec.torch_name} of plugin {spec} is already registered")
    if spec.version < 1:
        raise ConfigError(f"plugin {spec}: version must be >= 1")
    dtypes = {param.dtype for param in spec.inputs + spec.outputs} - set(DTYPES)
    if dtypes:
        raise ConfigError(f"plugin {spec}: dtypes {sorted(dtypes)} are not among {sorted(DTYPES)}")
    kinds = {attribute.kind for attribute in spec.attributes} - set(ONNX_ATTRIBUTE_TYPES)
    if kinds:
        raise ConfigError(
            f"plugin {spec}: attribute kinds {sorted(kinds)} are not {sorted(ONNX_ATTRIBUTE_TYPES)}"
        )


def add(spec: PluginSpec) -> None:
    """Put ``spec`` in the registry (after :func:`check_new`)."""
    _PLUGINS[spec.key] = spec


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


def plugins_used(model: onnx.ModelProto) -> list[PluginSpec]:
    """The registered plugins ``model``'s nodes need, each once, in graph order.

    Raises:
        UnknownPluginError: a node of a plugin domain is not a registered plugin.
    """
    used: dict[tuple[str, str, int], PluginSpec] = {}
    for _node, spec in plugin_nodes(model):
        used.setdefault(spec.key, spec)
    return list(used.values())


def _known() -> str:
    return f"(registered: {', '.join(str(spec) for spec in list_plugins()) or 'none'})"


def resolve(domain: str, op_type: str, opset_version: int) -> PluginSpec:
    """The plugin a node ``domain::op_type`` of a model with ``domain`` at ``opset_version`` is."""
    versions = [key[2] for key in _PLUGINS if key[:2] == (domain, op_type) and key[2] <= opset_version]
    if not versions:
        raise UnknownPluginError(
            f"no plugin {domain}::{op_type} of version <= {opset_version} is registered {_known()}"
        )
    return _PLUGINS[domain, op_type, max(versions)]


def plugin_nodes(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, PluginSpec]]:
    """The plugin nodes of the main graph (the model's own protos) with their plugins."""
    domains = {key[0] for key in _PLUGINS}
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    return [
        (node, resolve(node.domain, node.op_type, opsets.get(node.domain, 1)))
        for node in model.graph.node
        if node.domain in domains
    ]


def node_inputs(spec: PluginSpec, node: onnx.NodeProto) -> list[str | None]:
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


def node_attributes(spec: PluginSpec, node: onnx.NodeProto) -> dict[str, Any]:
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
        if proto.type != ONNX_ATTRIBUTE_TYPES[attribute.kind]:
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
