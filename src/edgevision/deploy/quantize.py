"""An INT8 Q/DQ ONNX model from an fp32 one and calibrated activation ranges.

The graph rewriting is ONNX Runtime's own (``onnxruntime.quantization.qdq_quantizer.QDQQuantizer``),
fed our ranges instead of its calibrators', so the QuantizeLinear/DequantizeLinear layout is the one
ORT's graph optimiser fuses into ``QLinearConv``, ``QLinearAdd``, ``QLinearConcat``...:

- activations uint8, asymmetric, over the observed ``(min, max)`` clipped to ``[-amax, amax]``
  (:meth:`TensorRange.clipped`). A signed tensor gets zero point ~128 and the resolution of
  TensorRT's symmetric int8; a non-negative one (after ReLU: most of a CNN) gets ``[0, amax]`` and
  all 256 levels, twice TensorRT's. With asymmetric activations ORT also drops ReLUs into the
  preceding Conv's output range. U8 activations with S8 weights is the pair the x86 kernels take
  natively (``vpmaddubsw``, VNNI ``vpdpbusd``): on FaceBoxes, ORT 1.32 fuses all 33 Convs this way,
  but only 12 with int8 asymmetric activations (``quantize_static``'s default) and none with int8
  symmetric ones (the ReLUs stay between Conv and QuantizeLinear); both run slower than fp32;
- weights int8, symmetric, per output channel for Conv (axis 0) unless ``per_channel=False``;
  biases int32 with scale ``input_scale * weight_scale``. No 7-bit ``reduce_range``: that is for
  CPUs without VNNI, whose int16 pair sums can saturate;
- ``symmetric=True`` gives what TensorRT's ONNX parser requires instead: int8 activations with
  zero point 0 over ``[-amax, amax]`` (TensorRT's own scheme; slower than U8S8 on ONNX Runtime);
- ``quantize_bias=False`` leaves the biases float: TensorRT's parser takes DequantizeLinear of int8
  only (not the int32 biases), and fuses the float bias into its int8 kernels itself;
- nodes named in ``exclude`` stay fp32: they read dequantized inputs, and their outputs are quantized
  only where a quantized node reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, QuantType
from onnxruntime.quantization.calibrate import TensorData, TensorsData
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

from edgevision.data.io import atomic_write
from edgevision.deploy.calibration import TensorRange, activation_tensors, load_model
from edgevision.deploy.graph import dequantized_names, topologically_sorted
from edgevision.deploy.passes.dead_layers import eliminate_dead_layers
from edgevision.errors import ConfigError

# What quantize_static quantizes in QDQ format: ops with a QLinear kernel (Add, Concat, Mul, ...)
# and the QDQ-specific ones (Conv, Relu, MaxPool, Reshape, ...).
QUANTIZED_OP_TYPES = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def quantize_qdq(
    model: onnx.ModelProto | str | Path,
    ranges: Mapping[str, TensorRange],
    path: str | Path,
    *,
    per_channel: bool = True,
    exclude: Sequence[str] = (),
    symmetric: bool = False,
    quantize_bias: bool = True,
) -> Path:
    """Write the Q/DQ INT8 version of ``model`` to ``path`` (atomically) and return the path.

    Args:
        model: an fp32 ONNX model or its file.
        ranges: calibrated ranges of (at least) every :func:`activation_tensors` of ``model``, e.g.
            :func:`edgevision.deploy.calibration.calibrate` of its histograms.
        path: the ``.onnx`` file to write; its folder is created.
        per_channel: one weight scale per Conv output channel, else one per weight tensor.
        exclude: names of nodes to keep in fp32.
        symmetric: int8 activations with zero point 0 (for TensorRT), else uint8 asymmetric.
        quantize_bias: biases as int32 Q/DQ (what ONNX Runtime fuses), else left float (TensorRT).

    Raises:
        ConfigError: ``ranges`` lacks an activation of ``model``, or ``exclude`` names a node the
            model does not have.
    """
    model = onnx.ModelProto.FromString(load_model(model).SerializeToString())  # ORT edits it in place
    missing = [name for name in activation_tensors(model) if name not in ranges]
    if missing:
        raise ConfigError(
            f"no calibrated range for {len(missing)} activations of the model, e.g. {missing[0]!r}"
        )
    unknown = sorted(set(exclude) - {node.name for node in model.graph.node})
    if unknown:
        raise ConfigError(f"cannot exclude {unknown[0]!r}: the model has no node of that name")
    clipped = {
        name: (-value.amax, value.amax) if symmetric else value.clipped() for name, value in ranges.items()
    }
    tensors = TensorsData(  # "MinMax": ORT reads each entry as a (lowest, highest) pair
        CalibrationMethod.MinMax,
        {
            name: TensorData(lowest=np.float32(low), highest=np.float32(high))
            for name, (low, high) in clipped.items()
        },
    )
    quantizer = QDQQuantizer(
        model,
        per_channel,
        False,  # reduce_range
        QuantType.QInt8,
        QuantType.QInt8 if symmetric else QuantType.QUInt8,
        tensors,
        [],  # nodes_to_quantize: all
        list(exclude),
        QUANTIZED_OP_TYPES,
        {"ActivationSymmetric": symmetric, "QuantizeBias": quantize_bias},
    )
    quantized = _shapes_from_float(topologically_sorted(quantizer.quantize_model()))
    with atomic_write(path) as handle:
        handle.write(quantized.SerializeToString())
    return Path(path)


def _shapes_from_float(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with ``Shape``/``Size`` nodes reading the float tensor, not its Q/DQ copy.

    ORT's quantizer points every reader of a quantised tensor at the DequantizeLinear output, the
    shape readers too; ORT then keeps a full-size DequantizeLinear alive just to read a shape
    (FaceBoxes: two of the input image, run every time; docs/benchmarks.md has the engine's timings).
    """
    new = onnx.ModelProto()
    new.CopyFrom(model)
    graph = new.graph
    float_of = {copy: name for name, copy in dequantized_names(new).items()}
    for node in graph.node:
        if node.op_type in ("Shape", "Size") and node.input[0] in float_of:
            node.input[0] = float_of[node.input[0]]
    return eliminate_dead_layers(new)[0]  # the Q/DQ copies nothing reads any more
