"""The runtime: a plan file loaded into its backend, run by named bindings.

``load_engine(path)`` reads and checks the plan (:mod:`edgevision.deploy.plan`) and opens a session
of the plan's backend (:mod:`edgevision.deploy.backends`: ONNX Runtime, with the plugins the model
needs, or OpenVINO) with the tactic the builder chose (threads, graph optimisation level).
:meth:`Engine.run` checks every input against its binding (dtype, rank, fixed dimensions) and runs a
batch larger than a plan's fixed batch of 1 in chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.backends import create_session, plan_backend
from edgevision.deploy.plan import Binding, Plan, read_plan
from edgevision.deploy.tuning import Tactic
from edgevision.errors import ShapeError


class Engine:
    """A plan ready to run.

    Args:
        plan: a plan read by :func:`edgevision.deploy.plan.read_plan`.
        threads: threads per operator, overriding the plan's tactic; ``None`` keeps the tactic's
            (or the backend's default when the plan was not tuned).
    """

    def __init__(self, plan: Plan, threads: int | None = None) -> None:
        self.plan = plan
        tactic = plan_tactic(plan)
        if threads is not None:
            tactic = replace(tactic, threads=threads)
        self.tactic = tactic
        self.session = create_session(plan, tactic)
        self.inputs: tuple[Binding, ...] = plan.inputs
        self.outputs: tuple[Binding, ...] = plan.outputs

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


def load_engine(path: str | Path, threads: int | None = None) -> Engine:
    """Read, check and load the plan file ``path`` (see :class:`Engine`)."""
    return Engine(read_plan(path), threads)


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
