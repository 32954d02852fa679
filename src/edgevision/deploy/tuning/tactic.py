"""A tactic: one whole session configuration of a plan's model (CPU backend, precision, int8 weight
scales, threads, graph optimisation level), as a plan records it and a backend opens it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import onnxruntime as ort

from edgevision.deploy.backends.capabilities import BACKENDS
from edgevision.deploy.plan import PRECISIONS
from edgevision.errors import ConfigError

GRAPH_OPTIMIZATION_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


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
            raise ConfigError(f"backend must be one of {tuple(BACKENDS)}, got {self.backend!r}")
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
