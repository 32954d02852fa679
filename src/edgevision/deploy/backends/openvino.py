"""The OpenVINO backend: a plan's ONNX model compiled by OpenVINO for its CPU plugin.

The model is the same standard ONNX that ONNX Runtime runs: fp32, or int8 as QuantizeLinear /
DequantizeLinear pairs, which OpenVINO reads as FakeQuantize and runs with its int8 kernels
(low-precision transformations), or fp16 tensors, which it upcasts. The inference precision hint is
pinned to f32 for all of them (this CPU has no fp16 arithmetic): left to
its default, the CPU plugin runs every float layer in bf16 on a CPU with avx512_bf16 or AMX, which
moves FaceBoxes' fp32 outputs by 5e-3 to 8e-3 of their scale against ONNX Runtime (1e-6 with f32
pinned; AMD EPYC with avx512_bf16, OpenVINO 2026.4, 240x320 and 480x640).

A plan keeps dynamic H and W, which OpenVINO runs slower than a static shape (docs/benchmarks.md);
so each input shape a session meets is compiled once, statically, and kept (the last
:data:`SHAPE_CACHE_SIZE` shapes), as TensorRT builds an engine per optimisation profile.

This module imports ``openvino`` (an optional extra); :func:`edgevision.deploy.backends.create_session`
imports it only for a plan that needs it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import onnx
import openvino as ov
import openvino.properties as props
import openvino.properties.hint as hints

from edgevision.deploy.backends import TensorInfo
from edgevision.errors import ConfigError

# The plan precisions this backend runs. Whatever the plan, the layers left in float run in f32,
# as ONNX Runtime runs them: an int8 plan's quantized layers run in int8 whatever the hint says,
# and an fp16 plan's float16 weights are upcast (f16 arithmetic needs avx512_fp16 or AMX-FP16).
PRECISIONS = ("fp32", "fp16", "int8")
VERSION = ov.__version__
SHAPE_CACHE_SIZE = 8  # statically compiled input shapes kept per session


class OpenVinoSession:
    """An ONNX model compiled for OpenVINO's CPU plugin, run like an ONNX Runtime session.

    Each :meth:`run` uses a new infer request of the model compiled for the feeds'
    shapes (compiled on first sight, under a lock), so a session may be run from several threads
    at once, as an ONNX Runtime session may.

    Args:
        model: the serialized ONNX model; dynamic dimensions stay dynamic.
        precision: the plan's precision, one of :data:`PRECISIONS`.
        threads: inference threads; 0 is OpenVINO's default (one per physical core).

    Raises:
        ConfigError: another precision, or a negative thread count.
    """

    def __init__(self, model: bytes, precision: str, threads: int = 0) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"the openvino backend runs {PRECISIONS} plans, got {precision!r}")
        if threads < 0:
            raise ConfigError(f"threads must be at least 0, got {threads}")
        self.config = {hints.inference_precision: ov.Type.f32}
        if threads:
            self.config[props.inference_num_threads] = threads
        self.core = ov.Core()
        self.model = model
        graph = onnx.load_from_string(model).graph
        self._names = {value.name for value in (*graph.input, *graph.output)}
        self.compiled = self.core.compile_model(self.core.read_model(model), "CPU", self.config)
        self._dynamic = any(None in info.shape for info in self.get_inputs())
        self._static: OrderedDict[tuple, ov.CompiledModel] = OrderedDict()
        self._lock = threading.Lock()

    def get_inputs(self) -> list[TensorInfo]:
        """The model's inputs, in order."""
        return [_info(port, self._names) for port in self.compiled.inputs]

    def get_outputs(self) -> list[TensorInfo]:
        """The model's outputs, in order."""
        return [_info(port, self._names) for port in self.compiled.outputs]

    def run(self, output_names: list[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named ``output_names`` (``None``: all, in order) for the inputs ``feeds`` by
        name; the arrays are the caller's (copies of OpenVINO's buffers)."""
        names = output_names or [info.name for info in self.get_outputs()]
        results = self.compiled_for(feeds).create_infer_request().infer(dict(feeds))
        return [results[name] for name in names]

    def compiled_for(self, feeds: Mapping[str, np.ndarray]) -> ov.CompiledModel:
        """The model compiled for the shapes of ``feeds`` (the dynamic one if it has no dynamic
        dimension to fix)."""
        if not self._dynamic:
            return self.compiled
        key = tuple(sorted((name, tuple(array.shape)) for name, array in feeds.items()))
        with self._lock:
            if key not in self._static:
                model = self.core.read_model(self.model)
                model.reshape({name: ov.PartialShape(list(shape)) for name, shape in key})
                self._static[key] = self.core.compile_model(model, "CPU", self.config)
                if len(self._static) > SHAPE_CACHE_SIZE:
                    self._static.popitem(last=False)
            self._static.move_to_end(key)
            return self._static[key]


def _info(port: ov.ConstOutput, declared: set[str]) -> TensorInfo:
    """The port's name as the ONNX graph declares it (OpenVINO may merge a graph input's name with
    that of the ``Cast`` after it, and ``get_any_name`` returns either) and its shape."""
    shape = tuple(dim.get_length() if dim.is_static else None for dim in port.get_partial_shape())
    names = sorted(port.get_names() & declared) or [port.get_any_name()]
    return TensorInfo(names[0], shape)
