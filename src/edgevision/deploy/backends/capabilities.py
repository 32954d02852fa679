"""What each backend needs of a plan and can run: the builder and the tuner consult these instead
of testing a backend's name.

Kept apart from the sessions (:mod:`edgevision.deploy.backends`) and without imports of its own,
so that a tactic can name a backend without importing any runtime.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """A runtime that runs a plan's ONNX model.

    Attributes:
        name: what options and tactics call it, e.g. ``"ort"``.
        runtime: the runtime's name a plan records (``Plan.backend``).
        cpu: runs on the CPU, so the tuner can time it (a GPU backend times its own kernels when it
            builds its engine).
        symmetric_int8: takes int8 Q/DQ with zero point 0 only (int8 activations over
            ``[-amax, amax]``), not uint8 asymmetric ones.
        quantize_bias: takes int32 bias Q/DQ; else the biases stay float (TensorRT's ONNX parser
            takes DequantizeLinear of int8 only).
        pixel_input: takes a plan with a uint8 pixel input (:mod:`..passes.pixel_input`), whose
            int8 read of the pixels is uint8 with a nonzero zero point.
        plugins: runs plugin nodes (:mod:`edgevision.deploy.plugins`).
        package: the optional package its session module imports; None when always installed.
        install: how to install it (and what else it needs).
    """

    name: str
    runtime: str
    cpu: bool
    symmetric_int8: bool = False
    quantize_bias: bool = True
    pixel_input: bool = True
    plugins: bool = False
    package: str | None = None
    install: str = ""

    @property
    def int8_format(self) -> tuple[bool, bool]:
        """What an int8 model for it is made with: ``(symmetric_int8, quantize_bias)``."""
        return self.symmetric_int8, self.quantize_bias


BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("ort", "onnxruntime", cpu=True, plugins=True),
        Backend(
            "openvino", "openvino", cpu=True, package="openvino", install="`pip install edgevision[openvino]`"
        ),
        Backend(
            "tensorrt",
            "tensorrt",
            cpu=False,
            symmetric_int8=True,
            quantize_bias=False,
            pixel_input=False,
            package="tensorrt",
            install="`pip install edgevision[tensorrt]` and a CUDA GPU",
        ),
    )
}
CPU_BACKENDS = tuple(name for name, backend in BACKENDS.items() if backend.cpu)  # what the tuner times
PLAN_NAMES = {name: backend.runtime for name, backend in BACKENDS.items()}  # as plans record them
