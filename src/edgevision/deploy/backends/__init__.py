"""Backends: the runtimes that run a plan's model.

A plan holds a standard ONNX model (fp32, or int8 as Q/DQ), so every backend runs the same file.
:data:`BACKENDS` (defined with :class:`edgevision.deploy.tuning.Tactic`, which names one) are:

- ``"ort"``: ONNX Runtime's CPU execution provider, with the plan's plugins registered and the
  optimisers :data:`edgevision.deploy.tuning.DISABLED_OPTIMIZERS` left out;
- ``"openvino"``: OpenVINO's CPU plugin (:mod:`.openvino`, an optional extra imported only when a
  plan needs it); it runs no plugins.

:func:`create_session` opens a session for a plan with a tactic; every session has the surface of
:class:`Session`, which the engine and :class:`edgevision.deploy.export.OnnxDetectorRuntime` use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort

from edgevision.deploy.plugins import make_session
from edgevision.deploy.tuning import BACKENDS, DISABLED_OPTIMIZERS, Tactic
from edgevision.errors import ConfigError

if TYPE_CHECKING:
    from edgevision.deploy.plan import Plan, Plugin

# The runtime's name a plan records (Plan.backend) for each backend
PLAN_NAMES = {"ort": "onnxruntime", "openvino": "openvino"}


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
    for backend, name in PLAN_NAMES.items():
        if plan.backend == name:
            return backend
    raise ConfigError(f"the plan was built for the {plan.backend!r} runtime; backends: {', '.join(BACKENDS)}")


def check_plugins(backend: str, plugins: Sequence[Plugin]) -> None:
    """Raise :class:`ConfigError` when ``backend`` cannot run a model that needs ``plugins``."""
    if backend != "ort" and plugins:
        names = ", ".join(f"{plugin.domain}::{plugin.op_type}" for plugin in plugins)
        raise ConfigError(f"the {backend} backend runs no plugins; the model needs {names}")


def create_session(plan: Plan, tactic: Tactic) -> Session:
    """A CPU session of ``plan``'s model on ``tactic.backend`` with the tactic's threads (and, for
    ONNX Runtime, its graph optimisation level and the plan's plugins).

    Raises:
        ConfigError: an OpenVINO session of a plan with plugins, or OpenVINO is not installed.
    """
    check_plugins(tactic.backend, plan.plugins)
    if tactic.backend == "openvino":
        return _openvino().OpenVinoSession(plan.model, plan.precision, tactic.threads)
    model = onnx.ModelProto.FromString(plan.model)
    return make_session(model, tactic.session_options(), disabled_optimizers=DISABLED_OPTIMIZERS)


def backend_version(backend: str) -> str:
    """The installed version of ``backend``'s runtime.

    Raises:
        ConfigError: ``backend`` is not one of :data:`BACKENDS`, or OpenVINO is not installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return _openvino().VERSION if backend == "openvino" else ort.__version__


def _openvino() -> ModuleType:
    """:mod:`.openvino`, imported now: ``openvino`` is an optional extra."""
    try:
        return importlib.import_module("edgevision.deploy.backends.openvino")
    except ModuleNotFoundError as error:
        if error.name != "openvino":
            raise
        raise ConfigError("the openvino backend needs `pip install edgevision[openvino]`") from None
