"""The TensorRT backend: a plan's ONNX model built into a TensorRT engine on a CUDA GPU.

TensorRT (10.x with strong typing, 11.x where it is the only mode) takes the precision from the
model's types: an int8 plan's Q/DQ nodes (explicit quantisation, the only INT8 TensorRT 11 keeps)
and an fp16 plan's float16 tensors (:mod:`edgevision.deploy.half`), so the builder's one ONNX model
serves this backend as it serves the CPU ones. The ONNX parser reads it into a strongly typed
network; one optimisation profile covers a batch of 1 to :data:`MAX_BATCH` and H, W from
:data:`MIN_SIDE` to :data:`MAX_SIDE` pixels, tuned for the size the plan was built for. The engine
is built when the session opens (seconds to minutes, as ``trtexec`` takes) and kept for the
session's life; buffers are torch CUDA tensors, run on torch's current stream.

This module imports ``tensorrt`` and needs a CUDA GPU; :func:`edgevision.deploy.backends.create_session`
imports it only for a plan built for TensorRT. It runs no plugins.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import tensorrt as trt
import torch

from edgevision.errors import ConfigError

VERSION = trt.__version__
MAX_BATCH = 8
MIN_SIDE = 32  # pixels: the smallest H or W the profile takes
MAX_SIDE = 2048  # pixels: the largest (WIDER FACE images are at most 1024 wide)
WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of a session: its name and shape, ``None`` for a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]


class TensorRtSession:
    """A TensorRT engine of an ONNX model, run like an ONNX Runtime session.

    Args:
        model: the serialized ONNX model (fp32, fp16 tensors, or int8 as Q/DQ).
        optimal_shapes: input name -> the shape to tune the engine for (the plan's built size);
            the profile spans batch 1..:data:`MAX_BATCH` and sides :data:`MIN_SIDE`..:data:`MAX_SIDE`
            on the dimensions that are dynamic in the model.

    Raises:
        ConfigError: no CUDA GPU is visible, TensorRT cannot parse the model, or the build fails.
    """

    def __init__(self, model: bytes, optimal_shapes: Mapping[str, tuple[int, ...]]) -> None:
        if not torch.cuda.is_available():
            raise ConfigError("the tensorrt backend needs a CUDA GPU, and torch sees none")
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model):
            errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
            raise ConfigError(f"TensorRT cannot parse the plan's model: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            tensor = network.get_input(index)
            low, best, high = profile_shapes(tuple(tensor.shape), optimal_shapes[tensor.name])
            profile.set_shape(tensor.name, low, best, high)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ConfigError("TensorRT failed to build an engine of the plan's model (see its log above)")
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(index) for index in range(self.engine.num_io_tensors)]
        modes = {name: self.engine.get_tensor_mode(name) for name in names}
        self._inputs = [name for name in names if modes[name] == trt.TensorIOMode.INPUT]
        self._outputs = [name for name in names if modes[name] == trt.TensorIOMode.OUTPUT]
        self._lock = threading.Lock()  # one execution context: one run at a time

    def get_inputs(self) -> list[TensorInfo]:
        return [self._info(name) for name in self._inputs]

    def get_outputs(self) -> list[TensorInfo]:
        return [self._info(name) for name in self._outputs]

    def run(self, output_names: list[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named ``output_names`` (``None``: all, in order) for the host arrays ``feeds``."""
        with self._lock:
            stream = torch.cuda.current_stream()
            buffers = {}
            for name in self._inputs:
                buffers[name] = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda()
                self.context.set_input_shape(name, tuple(buffers[name].shape))
            for name in self._outputs:
                dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
                shape = tuple(self.context.get_tensor_shape(name))
                buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            for name, buffer in buffers.items():
                self.context.set_tensor_address(name, buffer.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT failed to run the engine")
            stream.synchronize()
            return [buffers[name].cpu().numpy() for name in (output_names or self._outputs)]

    def _info(self, name: str) -> TensorInfo:
        shape = tuple(self.engine.get_tensor_shape(name))
        return TensorInfo(name, tuple(None if dim < 0 else int(dim) for dim in shape))


def profile_shapes(
    shape: tuple[int, ...], optimal: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) of an input whose model ``shape`` has ``-1`` for dynamic dimensions: the batch
    (axis 0) from 1 to :data:`MAX_BATCH`, any other from :data:`MIN_SIDE` to :data:`MAX_SIDE` (or
    to ``optimal`` if larger), and ``optimal`` itself as the shape to tune for."""
    low, high = [], []
    for axis, (dim, best) in enumerate(zip(shape, optimal, strict=True)):
        if dim >= 0:
            low.append(dim)
            high.append(dim)
        elif axis == 0:
            low.append(1)
            high.append(max(MAX_BATCH, best))
        else:
            low.append(min(MIN_SIDE, best))
            high.append(max(MAX_SIDE, best))
    return tuple(low), tuple(optimal), tuple(high)
