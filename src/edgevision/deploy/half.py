"""fp16 plans: every float tensor of the model in float16, the plan's inputs and outputs in float32.

TensorRT 11 builds only strongly typed networks (its ``FP16`` builder flag is gone): the ONNX types
decide the precision, so an fp16 engine starts from an fp16 ONNX model, which is what this makes,
with ONNX Runtime's own converter (``onnxruntime.transformers.float16``; NVIDIA's ModelOpt AutoCast
does the same job). Values beyond float16's range are clamped to it (65504), and nonzero ones below
its smallest subnormal (5.96e-8) raised to it, as the converter does.

On this CPU neither ONNX Runtime nor OpenVINO has float16 arithmetic: ONNX Runtime upcasts the
weights when it loads the plan and computes in float32 (same speed as fp32, half the plan file,
outputs within the float16 rounding of the weights), and OpenVINO is pinned to f32 likewise.
"""

from __future__ import annotations

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from edgevision.deploy.graph import topologically_sorted


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its float32 weights and activations in float16; the graph inputs and outputs
    stay float32 (a ``Cast`` after each input and before each output), in topological order (the
    converter appends its casts)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # the converter edits the model it is given
    return topologically_sorted(convert_float_to_float16(copy, keep_io_types=True))
