"""The timing cache: median latencies of tactics, keyed by everything a latency depends on, so that a
rebuild on the same machine times nothing it has timed (TensorRT's timing cache).

A cached time is valid for the same model bytes, backend and version, CPU (model, logical CPU count
and the ISA extensions its kernels dispatch on), tactic and input shapes: :func:`timing_key` hashes
all of them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgevision.data.io import atomic_write
from edgevision.deploy.backends import backend_version
from edgevision.deploy.tuning.tactic import Tactic
from edgevision.errors import ConfigError, InputFileError

# ISA extensions ONNX Runtime's MLAS kernels dispatch on (x86, then Arm), as /proc/cpuinfo names them
ISA_FLAGS = tuple(
    "avx avx2 fma f16c avx512f avx512bw avx512_vnni avx_vnni avx512_bf16 avx512_fp16 amx_tile amx_int8 "
    "amx_bf16 asimd asimdhp asimddp i8mm bf16 sve sve2 sme".split()
)
CACHE_FORMAT = "edgevision-timing/1"
_CPUINFO = Path("/proc/cpuinfo")


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
        "backend": [tactic.backend, backend_version(tactic.backend)],
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
