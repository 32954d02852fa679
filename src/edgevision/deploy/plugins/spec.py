"""What a plugin is: a custom ONNX operator's :class:`PluginSpec` (its inputs, outputs and attributes,
its shape function, a numpy reference and the PyTorch function it stands for)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
import torch

EDGEVISION_DOMAIN = "edgevision"
DTYPES = ("float32", "float64", "int64")  # the tensor dtypes a plugin may take and give

Dim = int | str | None  # a size, a symbolic size's name, or unknown
Shape = tuple[Dim, ...]
AttributeKind = Literal["int", "ints", "float", "floats", "string"]

ONNX_ATTRIBUTE_TYPES: dict[str, int] = {
    "int": onnx.AttributeProto.INT,
    "ints": onnx.AttributeProto.INTS,
    "float": onnx.AttributeProto.FLOAT,
    "floats": onnx.AttributeProto.FLOATS,
    "string": onnx.AttributeProto.STRING,
}


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
