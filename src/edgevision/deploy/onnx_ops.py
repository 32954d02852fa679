"""ONNX translations of the non-ATen ops edgevision's models use, for the ``torch.export``-based
exporter (``torch.onnx.export(..., dynamo=True, custom_translation_table=TRANSLATION_TABLE)``).

``torchvision::deform_conv2d`` becomes ONNX's native ``DeformConv`` (opset 19), which ONNX Runtime
runs on the CPU; both take the offsets in the same channel layout (per offset group, per kernel
tap, row then column offset), so the tensors pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from onnxscript import DOUBLE, FLOAT, FLOAT16
from onnxscript import opset19 as op

DEFORM_CONV_OPSET = 19  # the first opset with DeformConv

# DeformConv-19's type constraint T; the exporter reads the allowed types from the annotations.
TFloat = TypeVar("TFloat", FLOAT16, FLOAT, DOUBLE)


def deform_conv2d(
    input: TFloat,
    weight: TFloat,
    offset: TFloat,
    mask: TFloat,
    bias: TFloat,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    groups: int,
    offset_groups: int,
    use_mask: bool,
) -> TFloat:
    """``torchvision::deform_conv2d`` (arguments in its schema's order) as ONNX ``DeformConv``.

    torchvision always passes a bias (zeros when the module has none) and a placeholder mask
    when ``use_mask`` is false (DCNv1), which is dropped: ONNX's default mask is all ones.
    ``kernel_shape`` is left for the runtime to read from ``weight``, as the operator allows.
    """
    return op.DeformConv(
        input,
        weight,
        offset,
        bias,
        mask if use_mask else None,
        dilations=[dilation_h, dilation_w],
        group=groups,
        offset_group=offset_groups,
        pads=[pad_h, pad_w, pad_h, pad_w],
        strides=[stride_h, stride_w],
    )


TRANSLATION_TABLE: dict[Callable, Callable] = {torch.ops.torchvision.deform_conv2d.default: deform_conv2d}
