"""The runtime: a plan file loaded into its backend, run by named bindings.

``load_engine(path)`` reads and checks the plan (:mod:`edgevision.deploy.plan`) and opens a session
of the plan's backend (:mod:`edgevision.deploy.backends`: ONNX Runtime, with the plugins the model
needs, or OpenVINO) with the tactic the builder chose (threads, graph optimisation level).
A plan tuned on a larger machine may name more threads than this one has cores: the engine takes
this machine's cores instead (more threads than cores only wait on each other) and says so in
:attr:`Engine.notes`; a thread count given to the engine is taken as it is.
:meth:`Engine.run` checks every input against its binding (dtype, rank, fixed dimensions) and runs a
batch larger than a plan's fixed batch of 1 in chunks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.backends import create_session, plan_backend
from edgevision.deploy.plan import Binding, Plan, read_plan
from edgevision.deploy.plan_schema import MAX_THREADS
from edgevision.deploy.tuning import Tactic
from edgevision.errors import ConfigError, PlanFileError, ShapeError


class Engine:
    """A plan ready to run.

    Args:
        plan: a plan read by :func:`edgevision.deploy.plan.read_plan`.
        name: what messages call the plan, e.g. its file (:func:`load_engine` gives it).
        threads: threads per operator (0 to :data:`MAX_THREADS`; 0 is the backend's default),
            overriding the plan's tactic; ``None`` keeps the tactic's, at most this machine's cores
            (or the backend's default when the plan was not tuned).

    Attributes:
        tactic: the session's tactic, as run.
        notes: what the engine changed of the plan's tactic, and why.

    Raises:
        ConfigError: ``threads`` is out of its range.
        PlanFileError: the plan's model does not have the inputs and outputs its manifest lists
            (a model swapped into another plan).
    """

    def __init__(self, plan: Plan, threads: int | None = None, *, name: str = "the plan") -> None:
        self.plan = plan
        self.name = name
        self.notes: list[str] = []
        tactic = plan_tactic(plan)
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
                raise ConfigError(f"threads must be an integer from 0 to {MAX_THREADS}, got {threads!r}")
            tactic = replace(tactic, threads=threads)
        elif tactic.threads > available_cores():
            self.notes.append(
                f"the plan's tactic names {tactic.threads} threads; this machine has "
                f"{available_cores()} cores, so the engine runs {available_cores()}"
            )
            tactic = replace(tactic, threads=available_cores())
        self.tactic = tactic
        self.session = create_session(plan, tactic)
        self.inputs: tuple[Binding, ...] = plan.inputs
        self.outputs: tuple[Binding, ...] = plan.outputs
        self._check_model()

    def run(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Outputs by binding name for ``inputs`` by binding name (or the one input's array).

        Plans of registry models take any batch; a batch larger than a plan's fixed batch of 1
        (an imported ONNX file with N = 1) runs one item at a time and is stacked.

        Raises:
            ShapeError: an input is missing, unknown, or of the wrong dtype, rank or size.
        """
        feeds = self._checked(inputs)
        fixed_batch = [b for b in self.inputs if b.shape and b.shape[0] == 1]
        batch = next(iter(feeds.values())).shape[0] if feeds else 1
        if fixed_batch and batch > 1:
            chunks = [self._run({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(batch)]
            return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}
        return self._run(feeds)

    __call__ = run

    @property
    def preprocessing(self) -> Preprocessing:
        """How an image becomes the (first) input, as its binding records (raw BGR pixels, as
        float, for a plan that records none, e.g. one built from an ONNX file)."""
        recorded = self.inputs[0].preprocessing
        return Preprocessing.from_dict(recorded) if recorded else Preprocessing()

    def _check_model(self) -> None:
        """The session's inputs and outputs are those the manifest lists, by name."""
        for kind, bindings, values in (
            ("inputs", self.inputs, self.session.get_inputs()),
            ("outputs", self.outputs, self.session.get_outputs()),
        ):
            listed, found = sorted(b.name for b in bindings), sorted(value.name for value in values)
            if listed != found:
                raise PlanFileError(
                    f"{self.name}: its model's {kind} are {found}, its manifest lists {listed} "
                    "(a model from another plan?)"
                )

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [binding.name for binding in self.outputs]
        return dict(zip(names, self.session.run(names, feeds), strict=True))

    def _checked(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        if isinstance(inputs, np.ndarray):
            if len(self.inputs) != 1:
                raise ShapeError(f"the plan has {len(self.inputs)} inputs; pass them by name")
            inputs = {self.inputs[0].name: inputs}
        expected = {binding.name: binding for binding in self.inputs}
        unknown, missing = sorted(set(inputs) - set(expected)), sorted(set(expected) - set(inputs))
        if unknown or missing:
            raise ShapeError(
                f"the plan's inputs are {sorted(expected)}; missing {missing}, unknown {unknown}"
            )
        feeds = {}
        for name, array in inputs.items():
            binding = expected[name]
            array = np.asarray(array)
            if array.dtype != np.dtype(binding.dtype):
                raise ShapeError(f"input {name!r} must be {binding.dtype}, got {array.dtype}")
            if not _fits(array.shape, binding.shape):
                raise ShapeError(
                    f"input {name!r} must be of shape {_shape_text(binding.shape)}, got {array.shape}"
                )
            feeds[name] = np.ascontiguousarray(array)
        return feeds


def plan_tactic(plan: Plan) -> Tactic:
    """The session tactic the builder chose (``plan.tactics["session"]``), or the defaults of the
    plan's backend (all graph optimisations, one thread per physical core) for an untuned plan."""
    if "session" in plan.tactics:
        return Tactic.from_dict(plan.tactics["session"])
    return Tactic(
        backend=plan_backend(plan), precision=plan.precision, threads=0, graph_optimization_level="all"
    )


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_engine(path: str | Path, threads: int | None = None, *, key: bytes | None = None) -> Engine:
    """Read, check and load the plan file ``path`` (see :class:`Engine`); with ``key``, the plan
    must be signed with it (:func:`edgevision.deploy.plan.read_plan`)."""
    return Engine(read_plan(path, key=key), threads, name=str(path))


def _fits(shape: tuple[int, ...], expected: tuple[int | str, ...]) -> bool:
    """``shape`` has the binding's rank and its fixed dimensions; a batch of more than a fixed 1 is
    accepted (it runs in chunks)."""
    if len(shape) != len(expected):
        return False
    return all(
        isinstance(want, str) or got == want or (axis == 0 and want == 1)
        for axis, (got, want) in enumerate(zip(shape, expected, strict=True))
    )


def _shape_text(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(dim) for dim in shape) + ")"
