"""The TensorRT backend: a plan's ONNX model built into a TensorRT engine on a CUDA GPU.

TensorRT (10.x with strong typing, 11.x where it is the only mode) takes the precision from the
model's types: an int8 plan's Q/DQ nodes (explicit quantisation, the only INT8 TensorRT 11 keeps)
and an fp16 plan's float16 tensors (:mod:`edgevision.deploy.half`), so the builder's one ONNX model
serves this backend as it serves the CPU ones. The ONNX parser reads it into a strongly typed
network; one optimisation profile (:func:`.profiles.profile_shapes`) covers a batch of 1 to 8 and
H, W from 32 to 2048 pixels, tuned for the size the plan was built for. The engine
is built when the session opens (seconds to minutes, as ``trtexec`` takes) and kept for the
session's life; buffers are torch CUDA tensors, run on torch's current stream.

This module imports ``tensorrt`` and needs a CUDA GPU; :func:`edgevision.deploy.backends.create_session`
imports it only for a plan built for TensorRT. It runs no plugins.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import tensorrt as trt
import torch

from edgevision.deploy.backends import TensorInfo
from edgevision.deploy.backends.profiles import profile_shapes
from edgevision.errors import ConfigError, ShapeError

VERSION = trt.__version__
WORKSPACE_BYTES = 1 << 30


class TensorRtSession:
    """A TensorRT engine of an ONNX model, run like an ONNX Runtime session.

    Args:
        model: the serialized ONNX model (fp32, fp16 tensors, or int8 as symmetric Q/DQ).
        precision: the plan's precision; fp32 plans build without TF32 (on by default in
            TensorRT), so that they compute what ONNX Runtime does.
        optimal_shapes: input name -> the shape to tune the engine for (the plan's built size);
            the profile (:func:`.profiles.profile_shapes`) spans the dimensions that are dynamic in
            the model around it.

    Raises:
        ConfigError: no CUDA GPU is visible, TensorRT cannot parse the model, or the build fails.
        ShapeError: (``run``) an input outside the profile.
    """

    def __init__(self, model: bytes, precision: str, optimal_shapes: Mapping[str, tuple[int, ...]]) -> None:
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
        if precision == "fp32":
            config.clear_flag(trt.BuilderFlag.TF32)
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
        self._stream = torch.cuda.Stream()  # TensorRT warns against the default stream

    def get_inputs(self) -> list[TensorInfo]:
        return [self._info(name) for name in self._inputs]

    def get_outputs(self) -> list[TensorInfo]:
        return [self._info(name) for name in self._outputs]

    def run(self, output_names: list[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named ``output_names`` (``None``: all, in order) for the host arrays ``feeds``."""
        with self._lock, torch.cuda.stream(self._stream):
            buffers = {}
            for name in self._inputs:
                buffers[name] = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda()
                if not self.context.set_input_shape(name, tuple(buffers[name].shape)):
                    low, _, high = (tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
                    raise ShapeError(
                        f"input {name!r} of shape {tuple(buffers[name].shape)} is outside the engine's "
                        f"profile {low} .. {high}"
                    )
            for name in self._outputs:
                dtype = torch.from_numpy(np.empty(0, trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
                shape = tuple(self.context.get_tensor_shape(name))
                buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            for name, buffer in buffers.items():
                self.context.set_tensor_address(name, buffer.data_ptr())
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise ConfigError("TensorRT failed to run the engine (see its log above)")
            self._stream.synchronize()
            return [buffers[name].cpu().numpy() for name in (output_names or self._outputs)]

    def _info(self, name: str) -> TensorInfo:
        shape = tuple(self.engine.get_tensor_shape(name))
        return TensorInfo(name, tuple(None if dim < 0 else int(dim) for dim in shape))
