"""Empirical bias correction: the mean output shift that weight quantisation causes, folded into the
bias (Nagel et al., "Data-Free Quantization", ICCV 2019, Sec. 4.2, with the input means measured on
the calibration images instead of predicted from batch-norm statistics).

A convolution whose weights ``W`` are quantised to ``Wq`` computes ``Wq * x = W * x + (Wq - W) * x``;
the error term's expectation per output channel is ``sum over (c, kh, kw) of (Wq - W)[o, c] E[x_c]``
wherever the filter does not reach the zero padding. Subtracting it from the bias leaves the int8
layer unbiased. ``Wq`` is exactly what :func:`edgevision.deploy.quantize.quantize_qdq` makes (ONNX
Runtime's symmetric int8 weights: scale ``max|W| / 127`` per output channel or per tensor, round half
to even), so the correction matches the plan it is for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np
import onnx

from edgevision.deploy.calibration import INT8_STEPS, Batch, run_exposed
from edgevision.deploy.graph import NameAllocator, replace_nodes
from edgevision.deploy.passes.conv import ConstantConv, constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport


def quantized_weight(weight: np.ndarray, per_channel: bool) -> np.ndarray:
    """``weight`` (``(C_out, ...)``) rounded to symmetric int8 and back, as the quantiser does it."""
    flat = np.abs(weight.reshape(weight.shape[0], -1) if per_channel else weight.reshape(1, -1))
    scale = flat.max(axis=1) / INT8_STEPS
    scale = np.where(scale > 0, scale, 1.0).reshape(-1, *[1] * (weight.ndim - 1))
    return np.clip(np.round(weight / scale), -INT8_STEPS, INT8_STEPS) * scale


def conv_input_means(model: onnx.ModelProto, batches: Iterable[Batch]) -> dict[str, np.ndarray]:
    """Per-channel mean (over batch and space) of every constant conv's input over ``batches``."""
    tensors = sorted({conv.node.input[0] for conv in constant_convs(model).values()})
    sums: dict[str, np.ndarray] = {}
    count = 0
    for values in run_exposed(model, batches, tensors):
        for name in tensors:
            value = values[name].astype(np.float64)
            sums[name] = sums.get(name, 0.0) + value.mean(axis=(0, *range(2, value.ndim)))
        count += 1
    return {name: total / count for name, total in sums.items()}


def output_shift(conv: ConstantConv, input_mean: np.ndarray, per_channel: bool) -> np.ndarray:
    """``(C_out,)`` expected output change from quantising ``conv``'s weights, for an input whose
    channel means are ``input_mean`` (``(C_in,)``)."""
    weight = conv.weight.astype(np.float64)
    error = quantized_weight(weight, per_channel) - weight  # (C_out, C_in / g, kh, kw)
    groups, out_channels, in_per_group = conv.group, weight.shape[0], weight.shape[1]
    per_filter = error.reshape(out_channels, in_per_group, -1).sum(axis=2)  # (C_out, C_in / g)
    group_of = np.arange(out_channels) // (out_channels // groups)
    means = input_mean.reshape(groups, in_per_group)[group_of]  # (C_out, C_in / g)
    return (per_filter * means).sum(axis=1)


def correct_biases(
    model: onnx.ModelProto,
    input_means: dict[str, np.ndarray],
    per_channel: bool = True,
    exclude: Collection[str] = (),
) -> tuple[onnx.ModelProto, PassReport]:
    """``model`` with every constant conv's bias corrected for its int8 weights' mean error, given
    the :func:`conv_input_means`, except the convs named in ``exclude``: those stay fp32 (their
    weights are not quantised), so they have no error to correct. The report gives the largest
    shift of each conv corrected."""
    names, new_values = NameAllocator(model), {}
    replacements, details = {}, []
    for index, conv in constant_convs(model).items():
        if conv.node.name in exclude:
            continue
        shift = output_shift(conv, input_means[conv.node.input[0]], per_channel)
        replacements[index] = conv_with(
            conv, conv.weight, conv.bias - shift.astype(np.float32), conv.node.output[0], names, new_values
        )
        details.append(f"{conv.node.name or conv.node.output[0]}: bias shift up to {np.abs(shift).max():.3g}")
    new = replace_nodes(model, replacements, (), new_values)
    return new, PassReport.of("bias correction", model, new, details)
