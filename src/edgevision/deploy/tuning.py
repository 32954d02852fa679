"""Tactic selection: time whole session configurations and keep the fastest accurate one.

TensorRT's builder times candidate kernels ("tactics") for each layer and keeps the fastest, with a
timing cache so a rebuild on the same machine times nothing. Here a tactic is one level up: a whole
session configuration (CPU backend, precision, int8 weight scales, threads, graph optimisation
level). Each
candidate is built, run once, checked against reference outputs by an accuracy gate, then timed
(median of repeated runs) or looked up in a :class:`TimingCache`; the fastest accepted one wins.

A cached time is valid for the same model bytes, backend and version, CPU (model, logical CPU count
and the ISA extensions its kernels dispatch on), tactic and input shapes: :func:`timing_key` hashes
all of them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from edgevision.data.io import atomic_write
from edgevision.deploy.plan import PRECISIONS
from edgevision.errors import ConfigError, InputFileError, ShapeError

BACKENDS = ("ort", "openvino", "tensorrt")  # their sessions: edgevision.deploy.backends
CPU_BACKENDS = ("ort", "openvino")  # the ones the tuner times
GRAPH_OPTIMIZATION_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# ISA extensions ONNX Runtime's MLAS kernels dispatch on (x86, then Arm), as /proc/cpuinfo names them
ISA_FLAGS = tuple(
    "avx avx2 fma f16c avx512f avx512bw avx512_vnni avx_vnni avx512_bf16 avx512_fp16 amx_tile amx_int8 "
    "amx_bf16 asimd asimdhp asimddp i8mm bf16 sve sve2 sme".split()
)
# ONNX Runtime optimisers a plan's sessions run without: WeightBiasQuantization quantises (per
# tensor) the fp32 weights of a Conv the builder kept in fp32 when Q/DQ surrounds it, undoing the
# per-layer accuracy gate.
DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)
CACHE_FORMAT = "edgevision-timing/1"
_CPUINFO = Path("/proc/cpuinfo")
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


@dataclass(frozen=True, kw_only=True)
class Tactic:
    """One session configuration to build and time.

    Attributes:
        backend: the runtime; ``"ort"`` (ONNX Runtime, CPU execution provider), ``"openvino"``
            (OpenVINO's CPU plugin; it takes ``threads`` and ignores ``graph_optimization_level``)
            or ``"tensorrt"`` (a CUDA GPU; it ignores both).
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``: what the build function makes.
        per_channel: int8 weight scales per Conv output channel, else per tensor; ignored unless int8.
        threads: intra-op threads of the session; 0 is the backend's default (one per physical
            core), which an untuned plan uses.
        graph_optimization_level: ``"basic"``, ``"extended"`` or ``"all"`` (ORT_ENABLE_*).

    Raises:
        ConfigError: a field is out of its range.
    """

    backend: str = "ort"
    precision: str
    per_channel: bool = False
    threads: int
    graph_optimization_level: str

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ConfigError(f"threads must be an integer of at least 0, got {self.threads!r}")
        if self.graph_optimization_level not in GRAPH_OPTIMIZATION_LEVELS:
            raise ConfigError(
                f"graph_optimization_level must be one of {tuple(GRAPH_OPTIMIZATION_LEVELS)}, "
                f"got {self.graph_optimization_level!r}"
            )

    def __str__(self) -> str:
        scales = (" per-channel" if self.per_channel else " per-tensor") if self.precision == "int8" else ""
        return (
            f"{self.backend} {self.precision}{scales} threads={self.threads} "
            f"opt={self.graph_optimization_level}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON values, e.g. for a plan manifest's ``tactics``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tactic:
        """The tactic :meth:`as_dict` gave (:class:`ConfigError` on missing or unknown fields)."""
        try:
            return cls(**data)
        except TypeError as error:
            raise ConfigError(f"not a tactic: {dict(data)!r} ({error})") from None

    def session_options(self) -> ort.SessionOptions:
        """ONNX Runtime options: ``threads`` intra-op threads, one inter-op thread (nodes run in
        sequence), and the graph optimisation level (:class:`ConfigError` for another backend)."""
        if self.backend != "ort":
            raise ConfigError(f"session options are ONNX Runtime's; this tactic's backend is {self.backend}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = GRAPH_OPTIMIZATION_LEVELS[self.graph_optimization_level]
        return options

    def build_key(self) -> tuple[str, bool]:
        """What the built model depends on: the precision and, for int8, the weight scales; threads
        and the optimisation level are session options of the same model."""
        return self.precision, self.per_channel and self.precision == "int8"


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


def cpu_identity(cpuinfo: Path = _CPUINFO) -> str:
    """The CPU model, its logical CPU count and the :data:`ISA_FLAGS` it has, from ``cpuinfo``
    (Linux's ``/proc/cpuinfo``), else from :func:`platform.processor`."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = next(
        (fields[key] for key in ("model name", "Hardware", "CPU part") if fields.get(key)),
        platform.processor() or platform.machine(),
    )
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    flags = " ".join(flag for flag in ISA_FLAGS if flag in present)
    return f"{model}; {os.cpu_count()} cpus; {flags}"


def timing_key(model: bytes, tactic: Tactic, feeds: Mapping[str, np.ndarray], cpu: str | None = None) -> str:
    """sha256 of what a latency depends on: the model bytes, backend and its version, the CPU
    (:func:`cpu_identity` unless given), the tactic, and the inputs' dtypes and shapes."""
    identity = {
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "backend": [tactic.backend, _backend_version(tactic.backend)],
        "cpu": cpu_identity() if cpu is None else cpu,
        "tactic": tactic.as_dict(),
        "inputs": {name: [str(array.dtype), list(array.shape)] for name, array in feeds.items()},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def default_timing_cache() -> Path:
    """The timing cache a tuned build reads and updates unless told otherwise:
    ``timing_cache.json`` in ``$EDGEVISION_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgevision``, else
    ``~/.cache/edgevision``."""
    folder = os.environ.get("EDGEVISION_CACHE_DIR")
    if not folder:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgevision"
    return Path(folder) / "timing_cache.json"


class TimingCache:
    """Median latencies in ms by :func:`timing_key`, kept in a JSON file at ``path``.

    :func:`tune` reads and adds entries; :meth:`save` writes the file (atomically).
    """

    def __init__(self, path: str | Path, entries: Mapping[str, float] | None = None) -> None:
        self.path = Path(path)
        self._entries = dict(entries or {})

    @classmethod
    def load(cls, path: str | Path) -> TimingCache:
        """The cache in ``path``, empty if there is no such file.

        Raises:
            InputFileError: the file is not a timing cache (not JSON, another format, bad entries).
        """
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload["format"] != CACHE_FORMAT:
                raise ValueError(payload["format"])
            entries = {str(key): float(ms) for key, ms in payload["entries"].items()}
            if not all(math.isfinite(ms) and ms >= 0 for ms in entries.values()):
                raise ValueError("a time is negative or not finite")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise InputFileError(f"not an edgevision timing cache: {path} ({type(error).__name__})") from None
        return cls(path, entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> float | None:
        """The cached median ms for ``key``, or ``None``."""
        return self._entries.get(key)

    def put(self, key: str, ms: float) -> None:
        """Record the median ``ms`` (finite, non-negative) for ``key``."""
        if not (math.isfinite(ms) and ms >= 0):
            raise ConfigError(f"a timing must be a finite, non-negative number of ms, got {ms}")
        self._entries[key] = float(ms)

    def save(self) -> Path:
        """Write the cache to :attr:`path` (atomically; its folder is created) and return the path."""
        payload = {"format": CACHE_FORMAT, "entries": dict(sorted(self._entries.items()))}
        with atomic_write(self.path, "w") as handle:
            json.dump(payload, handle, indent=1)
        return self.path


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
        session = _open_session(model, tactic)
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


def _open_session(model: bytes, tactic: Tactic) -> Any:
    """The tactic's session of ``model`` (imported here: the backends module imports this one)."""
    from edgevision.deploy.backends import open_session

    return open_session(model, tactic)


def _backend_version(backend: str) -> str:
    from edgevision.deploy.backends import backend_version

    return backend_version(backend)
