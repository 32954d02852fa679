"""Deformable RoI pooling as plugins ``edgevision::DeformRoIPool`` and ``edgevision::DeformPSRoIPool``,
version 1 (their specs; :mod:`edgevision.deploy.plugins` registers them):
:func:`edgevision.layers.deform_roi_pool.deform_roi_pool` and ``deform_ps_roi_pool``.

Inputs: ``input (B, C, H, W)``, ``rois (K, 5)`` ``(batch_index, x1, y1, x2, y2)`` in image pixels,
and the optional normalised bin offsets ``offset (K, 2, k_h, k_w)``, all float32. Attributes:
``output_size`` (ints ``[k_h, k_w]``), ``spatial_scale`` (float), ``sampling_ratio`` (int),
``gamma`` (float, default 0.1) and ``mode`` (string ``"mxnet"`` or ``"align"``, default
``"mxnet"``), as the functions' arguments. Output ``(K, C, k_h, k_w)``, or ``(K, C / (k_h k_w),
k_h, k_w)`` for the position-sensitive form. The numpy reference runs the PyTorch function on CPU.

Torch ops (what export traces): ``torch.ops.edgevision.deform_roi_pool`` and
``torch.ops.edgevision.deform_ps_roi_pool``, with the functions' arguments (``output_size`` a
pair).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from edgevision.deploy.plugins.spec import EDGEVISION_DOMAIN, Attribute, Dim, PluginSpec, Shape, TensorParam
from edgevision.errors import ConfigError, ShapeError
from edgevision.layers.deform_roi_pool import deform_ps_roi_pool, deform_roi_pool

INPUTS = (TensorParam("input"), TensorParam("rois"), TensorParam("offset", optional=True))
OUTPUTS = (TensorParam("output"),)
ATTRIBUTES = (
    Attribute("output_size", "ints"),
    Attribute("spatial_scale", "float"),
    Attribute("sampling_ratio", "int"),
    Attribute("gamma", "float", 0.1),
    Attribute("mode", "string", "mxnet"),
)


def _infer_shape(
    position_sensitive: bool,
) -> Callable[[Sequence[Shape | None], Mapping[str, Any]], tuple[Shape, ...]]:
    def infer_shape(shapes: Sequence[Shape | None], attributes: Mapping[str, Any]) -> tuple[Shape, ...]:
        input, rois, offset = shapes
        if len(attributes["output_size"]) != 2:
            raise ConfigError(f"output_size must be [k_h, k_w], got {attributes['output_size']}")
        k_h, k_w = attributes["output_size"]
        if len(input) != 4:
            raise ShapeError(f"input must be (B, C, H, W), got {input}")
        if len(rois) != 2 or isinstance(rois[1], int) and rois[1] != 5:
            raise ShapeError(f"rois must be (K, 5), got {rois}")
        if offset is not None and len(offset) != 4:
            raise ShapeError(f"offset must be (K, 2, {k_h}, {k_w}), got {offset}")
        channels = _divide(input[1], k_h * k_w) if position_sensitive else input[1]
        return ((rois[0], channels, k_h, k_w),)

    return infer_shape


def _divide(channels: Dim, bins: int) -> Dim:
    """``C / (k_h k_w)`` of a known size (or ``torch.SymInt``); unknown for a symbolic one."""
    if channels is None or isinstance(channels, str):
        return None
    if isinstance(channels, int) and channels % bins:
        raise ShapeError(f"input channels {channels} must be a multiple of k_h * k_w = {bins}")
    return channels // bins


def _numpy_reference(function: Callable[..., torch.Tensor]) -> Callable[..., tuple[np.ndarray, ...]]:
    def reference(
        input: np.ndarray, rois: np.ndarray, offset: np.ndarray | None, **attributes: Any
    ) -> tuple[np.ndarray, ...]:
        # torch.tensor copies: ONNX Runtime and callers may hand over read-only arrays.
        tensors = [None if array is None else torch.tensor(array) for array in (input, rois, offset)]
        with torch.no_grad():
            return (function(*tensors, **attributes).numpy(),)

    return reference


def _spec(op_type: str, function: Callable[..., torch.Tensor], position_sensitive: bool) -> PluginSpec:
    """Version 1 of ``edgevision::op_type``, standing for ``function`` (its torch op is named as it)."""
    return PluginSpec(
        domain=EDGEVISION_DOMAIN,
        op_type=op_type,
        version=1,
        inputs=INPUTS,
        outputs=OUTPUTS,
        attributes=ATTRIBUTES,
        infer_shape=_infer_shape(position_sensitive),
        reference=_numpy_reference(function),
        torch_fn=function,
        torch_name=f"{EDGEVISION_DOMAIN}::{function.__name__}",
    )


DEFORM_ROI_POOL = _spec("DeformRoIPool", deform_roi_pool, position_sensitive=False)
DEFORM_PS_ROI_POOL = _spec("DeformPSRoIPool", deform_ps_roi_pool, position_sensitive=True)
