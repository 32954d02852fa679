"""The tuner: build, gate and time candidate tactics, and keep the fastest accurate one.

TensorRT's builder times candidate kernels ("tactics") for each layer and keeps the fastest. Here a
tactic (:class:`.tactic.Tactic`) is a whole session configuration. Each candidate is built, run once,
checked against reference outputs by an accuracy gate, then timed (median of repeated runs) or
looked up in a :class:`.timing_cache.TimingCache`; the fastest accepted one wins.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from edgevision.deploy.backends import open_session
from edgevision.deploy.backends.capabilities import CPU_BACKENDS
from edgevision.deploy.tuning.tactic import Tactic
from edgevision.deploy.tuning.timing_cache import TimingCache, cpu_identity, timing_key
from edgevision.errors import ConfigError, ShapeError

# What a session that cannot be built or run for a tactic raises (they share no base but Exception);
# a build that is not a model at all fails to parse (DecodeError).
_SESSION_ERRORS = (
    ConfigError,  # e.g. a backend that cannot run the model's plugins
    RuntimeError,  # OpenVINO's errors
    DecodeError,
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)

Outputs = Sequence[np.ndarray]
Gate = Callable[[Outputs, Outputs], str | None]


@dataclass(frozen=True)
class TuningRow:
    """One candidate's outcome: its median ``ms`` (``None`` unless accepted), whether the gate
    accepted it, why not (``reason``), and whether the time came from the cache."""

    tactic: Tactic
    ms: float | None
    accepted: bool
    reason: str | None
    cached: bool


@dataclass(frozen=True)
class TuningResult:
    """The chosen tactic, its median latency in ms, its serialized model, and every candidate's row."""

    tactic: Tactic
    ms: float
    model: bytes
    rows: tuple[TuningRow, ...]

    def __str__(self) -> str:
        width = max(len("tactic"), *(len(str(row.tactic)) for row in self.rows))
        lines = [f"{'tactic':<{width}}  {'median ms':>9}  source  verdict"]
        for row in self.rows:
            ms = "-" if row.ms is None else f"{row.ms:.3f}"
            source = "-" if row.ms is None else ("cache" if row.cached else "timed")
            verdict = "accepted" if row.accepted else f"rejected: {row.reason}"
            chosen = "  <- chosen" if row.tactic == self.tactic else ""
            lines.append(f"{str(row.tactic):<{width}}  {ms:>9}  {source:<6}  {verdict}{chosen}")
        lines.append(f"chosen: {self.tactic} ({self.ms:.3f} ms)")
        return "\n".join(lines)


def candidate_tactics(
    precisions: Sequence[str],
    threads: Sequence[int] = (1, 2),
    levels: Sequence[str] = ("extended", "all"),
    per_channel: Sequence[bool] = (True, False),
    backends: Sequence[str] = ("ort",),
) -> list[Tactic]:
    """Every combination of the options, ``per_channel`` varied for int8 only (``False`` otherwise)
    and ``levels`` for ONNX Runtime only (OpenVINO has no such setting: ``"all"``).

    Raises:
        ConfigError: a backend is not a CPU one (TensorRT times its own kernels when it builds).
    """
    if set(backends) - set(CPU_BACKENDS):
        raise ConfigError(f"tactics are timed on the CPU backends {CPU_BACKENDS}, not {tuple(backends)}")
    return [
        Tactic(
            backend=backend,
            precision=precision,
            per_channel=scales,
            threads=count,
            graph_optimization_level=level,
        )
        for backend in backends
        for precision in precisions
        for scales in (per_channel if precision == "int8" else (False,))
        for count in threads
        for level in (levels if backend == "ort" else ("all",))
    ]


def time_session(
    session: Any,
    feeds: Mapping[str, np.ndarray],
    warmup: int = 3,
    repeats: int = 20,
    timer: Callable[[], float] = time.perf_counter,
) -> float:
    """Median wall time in ms of ``session.run`` on ``feeds`` over ``repeats`` runs, after ``warmup``
    untimed ones; ``timer`` returns seconds and is called twice a timed run."""
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    feeds = dict(feeds)
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(repeats):
        start = timer()
        session.run(None, feeds)
        times.append((timer() - start) * 1000)
    return float(statistics.median(times))


def max_relative_error_gate(tolerance: float) -> Gate:
    """A gate that accepts outputs whose ``max |output - reference| / max |reference|`` is at most
    ``tolerance`` for every output (the absolute error where the reference is all zeros); NaN fails."""
    if not tolerance >= 0:
        raise ConfigError(f"tolerance must be non-negative, got {tolerance}")

    def gate(outputs: Outputs, references: Outputs) -> str | None:
        if len(outputs) != len(references):
            return f"{len(outputs)} outputs, expected {len(references)}"
        for index, (output, reference) in enumerate(zip(outputs, references)):
            if output.shape != reference.shape:
                return f"output {index} has the shape {output.shape}, expected {reference.shape}"
            output, reference = np.asarray(output, np.float64), np.asarray(reference, np.float64)
            error = np.abs(output - reference).max(initial=0.0)
            scale = np.abs(reference).max(initial=0.0)
            relative = error / scale if scale > 0 else error
            if not relative <= tolerance:
                return f"output {index}: max relative error {relative:.2e} > {tolerance:.2e}"
        return None

    return gate


def tune(
    candidates: Sequence[Tactic],
    build: Callable[[Tactic], onnx.ModelProto | bytes],
    feeds: Mapping[str, np.ndarray],
    *,
    reference_outputs: Outputs | None = None,
    gate: Gate | None = None,
    cache: TimingCache | None = None,
    warmup: int = 3,
    repeats: int = 20,
    timer: Callable[[], float] = time.perf_counter,
) -> TuningResult:
    """Build, check and time every candidate; return the fastest one the gate accepts.

    A candidate's model is ``build(tactic)``, once per :meth:`Tactic.build_key`. Its session is run
    once on ``feeds``; ``gate(outputs, reference_outputs)`` returns ``None`` to accept it or a reason to
    reject it. An accepted candidate's median ms (:func:`time_session`) comes from ``cache`` when it
    has the :func:`timing_key`, else it is timed and put in ``cache`` (which the caller saves). A
    candidate whose session fails to build or run is rejected with ONNX Runtime's message. Duplicate
    candidates are tuned once; of equally fast ones, the first wins.

    Raises:
        ConfigError: no candidates, only one of ``gate`` and ``reference_outputs``, or no candidate
            accepted (the message gives the reasons).
        ShapeError: ``feeds`` lack an input of a built model.
    """
    candidates = list(dict.fromkeys(candidates))
    if not candidates:
        raise ConfigError("no candidate tactics to tune")
    if (gate is None) != (reference_outputs is None):
        raise ConfigError("an accuracy gate needs reference outputs, and reference outputs need a gate")
    check = None if gate is None else lambda outputs: gate(outputs, reference_outputs)
    time_it = functools.partial(time_session, feeds=feeds, warmup=warmup, repeats=repeats, timer=timer)
    cpu = cpu_identity()
    models: dict[tuple[str, bool], bytes] = {}
    rows = []
    for tactic in candidates:
        if tactic.build_key() not in models:
            models[tactic.build_key()] = _serialized(build(tactic))
        rows.append(_evaluate(tactic, models[tactic.build_key()], feeds, check, time_it, cache, cpu))
    accepted = [row for row in rows if row.accepted]
    if not accepted:
        raise ConfigError(f"none of {len(rows)} candidate tactics was accepted: {_reasons(rows)}")
    best = min(accepted, key=lambda row: row.ms)
    return TuningResult(best.tactic, best.ms, models[best.tactic.build_key()], tuple(rows))


def _evaluate(
    tactic: Tactic,
    model: bytes,
    feeds: Mapping[str, np.ndarray],
    check: Callable[[Outputs], str | None] | None,
    time_it: Callable[[Any], float],
    cache: TimingCache | None,
    cpu: str,
) -> TuningRow:
    """One candidate's row: run once, gate, then take the time cached for its :func:`timing_key` on
    ``cpu`` or time it."""
    try:
        session = open_session(model, tactic)
        missing = [value.name for value in session.get_inputs() if value.name not in feeds]
        if missing:
            raise ShapeError(f"the feeds {sorted(feeds)} lack the input(s) {missing} of the {tactic} model")
        outputs = session.run(None, dict(feeds))
    except _SESSION_ERRORS as error:
        return TuningRow(tactic, None, False, f"session failed: {' '.join(str(error).split())}", False)
    reason = None if check is None else check(outputs)
    if reason is not None:
        return TuningRow(tactic, None, False, reason, False)
    if cache is None:
        return TuningRow(tactic, time_it(session), True, None, False)
    key = timing_key(model, tactic, feeds, cpu)
    ms = cache.get(key)
    if ms is not None:
        return TuningRow(tactic, ms, True, None, True)
    ms = time_it(session)
    cache.put(key, ms)
    return TuningRow(tactic, ms, True, None, False)


def _serialized(model: onnx.ModelProto | bytes) -> bytes:
    return model if isinstance(model, bytes) else model.SerializeToString()


def _reasons(rows: Sequence[TuningRow]) -> str:
    """Each distinct rejection reason once, with how many candidates it rejected."""
    counts = Counter(row.reason for row in rows)
    return "; ".join(f"{count}x {reason}" for reason, count in counts.items())
