"""Backends: the runtimes that run a plan's model.

A plan holds a standard ONNX model (fp32, fp16, or int8 as Q/DQ), so every backend runs the same
file. :data:`.capabilities.BACKENDS` says what each needs of it and can run:

- ``"ort"``: ONNX Runtime's CPU execution provider, with the plan's plugins registered and the
  optimisers :data:`DISABLED_OPTIMIZERS` left out;
- ``"openvino"``: OpenVINO's CPU plugin (:mod:`.openvino`, an optional extra imported only when a
  plan needs it); it runs no plugins;
- ``"tensorrt"``: a TensorRT engine on a CUDA GPU (:mod:`.tensorrt`, an optional extra, likewise);
  it runs no plugins, and its int8 is symmetric with float biases.

:func:`create_session` opens a session for a plan with a tactic
(:class:`edgevision.deploy.tuning.Tactic`); every session has the surface of :class:`Session`,
which the engine and :class:`edgevision.deploy.export.OnnxNetwork` use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort

from edgevision.deploy.backends.capabilities import BACKENDS, PLAN_NAMES
from edgevision.deploy.plan import Plugin
from edgevision.deploy.plugins import make_session, plugins_used
from edgevision.errors import ConfigError

if TYPE_CHECKING:
    from edgevision.deploy.plan import Plan
    from edgevision.deploy.tuning import Tactic

# ONNX Runtime optimisers a plan's sessions run without: WeightBiasQuantization quantises (per
# tensor) the fp32 weights of a Conv the builder kept in fp32 when Q/DQ surrounds it, undoing the
# per-layer accuracy gate.
DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)
UNKNOWN_SIDE = 512  # pixels: the side a TensorRT profile is tuned for when the plan does not say


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of an OpenVINO or TensorRT session: its tensor name and shape, ``None``
    for a dynamic dimension (where ONNX Runtime's ``NodeArg`` gives its symbolic name)."""

    name: str
    shape: tuple[int | None, ...]


class Session(Protocol):
    """What the code uses of a session: its inputs and outputs (``.name``, ``.shape``) and ``run``,
    which returns the outputs named (``None``: all) in that order."""

    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...

    def run(self, output_names: list[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


def plan_backend(plan: Plan) -> str:
    """The backend (one of :data:`BACKENDS`) of the runtime ``plan`` was built for.

    Raises:
        ConfigError: the plan names a runtime that no backend is.
    """
    for name, runtime in PLAN_NAMES.items():
        if plan.backend == runtime:
            return name
    raise ConfigError(f"the plan was built for the {plan.backend!r} runtime; backends: {', '.join(BACKENDS)}")


def check_plugins(backend: str, plugins: Sequence[Plugin]) -> None:
    """Raise :class:`ConfigError` when ``backend`` cannot run a model that needs ``plugins``."""
    if plugins and not BACKENDS[backend].plugins:
        names = ", ".join(f"{plugin.domain}::{plugin.op_type}" for plugin in plugins)
        raise ConfigError(f"the {backend} backend runs no plugins; the model needs {names}")


def create_session(plan: Plan, tactic: Tactic) -> Session:
    """A session of ``plan``'s model on ``tactic.backend`` with the tactic's threads (and, for
    ONNX Runtime, its graph optimisation level and the plan's plugins); TensorRT takes no threads.

    Raises:
        ConfigError: an OpenVINO or TensorRT session of a plan with plugins, or the backend's
            package (or, for TensorRT, a GPU) is missing.
    """
    check_plugins(tactic.backend, plan.plugins)
    if tactic.backend == "tensorrt":
        return _optional("tensorrt").TensorRtSession(plan.model, plan.precision, _built_shapes(plan))
    return open_session(plan.model, replace(tactic, precision=plan.precision))


def open_session(model: bytes, tactic: Tactic) -> Session:
    """A CPU session of the serialized ``model`` on ``tactic.backend`` (``"ort"`` with the
    plugins the model uses, or ``"openvino"``), as the tuner times and :func:`create_session` opens.

    Raises:
        ConfigError: another backend, an OpenVINO session of a model with plugins, or OpenVINO is
            not installed.
    """
    if tactic.backend == "openvino":
        used = plugins_used(onnx.ModelProto.FromString(model))
        check_plugins("openvino", [Plugin(spec.domain, spec.op_type, spec.version) for spec in used])
        return _optional("openvino").OpenVinoSession(model, tactic.precision, tactic.threads)
    if tactic.backend != "ort":
        raise ConfigError(f"{tactic.backend} is not a CPU backend")
    proto = onnx.ModelProto.FromString(model)
    return make_session(proto, tactic.session_options(), disabled_optimizers=DISABLED_OPTIMIZERS)


def backend_version(backend: str) -> str:
    """The installed version of ``backend``'s runtime.

    Raises:
        ConfigError: ``backend`` is not one of :data:`BACKENDS`, or its package is not installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {tuple(BACKENDS)}, got {backend!r}")
    return _optional(backend).VERSION if BACKENDS[backend].package else ort.__version__


def _optional(backend: str) -> ModuleType:
    """The session module of an optional ``backend`` (``.openvino``, ``.tensorrt``), imported now."""
    package = BACKENDS[backend].package
    try:
        return importlib.import_module(f"edgevision.deploy.backends.{backend}")
    except ModuleNotFoundError as error:
        if error.name != package:
            raise
        raise ConfigError(f"the {backend} backend needs {BACKENDS[backend].install}") from None


def _built_shapes(plan: Plan) -> dict[str, tuple[int, ...]]:
    """Input name -> the concrete shape the plan was built for: batch 1, and the plan's input size
    (H, then W) on its other dynamic dimensions."""
    sides = list(plan.source.get("input_size") or (UNKNOWN_SIDE, UNKNOWN_SIDE))
    shapes = {}
    for binding in plan.inputs:
        remaining = iter(sides)
        shapes[binding.name] = tuple(
            dim if isinstance(dim, int) else 1 if axis == 0 else next(remaining, UNKNOWN_SIDE)
            for axis, dim in enumerate(binding.shape)
        )
    return shapes
