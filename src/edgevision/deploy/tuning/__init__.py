"""Tactic selection: time whole session configurations and keep the fastest accurate one.

- :mod:`.tactic`: :class:`Tactic`, one session configuration (CPU backend, precision, int8 weight
  scales, threads, graph optimisation level), as a plan records it;
- :mod:`.timing_cache`: :class:`TimingCache`, median latencies keyed by model, backend, CPU, tactic
  and input shapes, so a rebuild on the same machine times nothing it has timed;
- :mod:`.tuner`: :func:`tune`, which builds, gates and times (or looks up) each candidate.
"""

from edgevision.deploy.tuning.tactic import GRAPH_OPTIMIZATION_LEVELS, Tactic
from edgevision.deploy.tuning.timing_cache import (
    TimingCache,
    cpu_identity,
    default_timing_cache,
    timing_key,
)
from edgevision.deploy.tuning.tuner import (
    Gate,
    TuningResult,
    TuningRow,
    candidate_tactics,
    max_relative_error_gate,
    time_session,
    tune,
)

__all__ = [
    "GRAPH_OPTIMIZATION_LEVELS",
    "Gate",
    "Tactic",
    "TimingCache",
    "TuningResult",
    "TuningRow",
    "candidate_tactics",
    "cpu_identity",
    "default_timing_cache",
    "max_relative_error_gate",
    "time_session",
    "timing_key",
    "tune",
]
