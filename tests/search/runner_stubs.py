"""A stub space, strategy and evaluate for the runner's tests. Ray workers import this module by
name, so the tests put its folder on the workers' PYTHONPATH (or run a script beside it)."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgevision.errors import ConfigError
from edgevision.search.trial_log import read_trial_log


class CounterSpace:
    """Architectures ``(k,)`` for k in 0..999; JSON ``[k]``."""

    name = "counter"
    num_choices = (1000,)

    def sample(self, rng: random.Random) -> tuple[int]:
        return (rng.randrange(1000),)

    def mutate(self, arch: tuple[int], rng: random.Random) -> tuple[int]:
        return self.sample(rng)

    def encode(self, arch: tuple[int]) -> tuple[int, ...]:
        return arch

    def decode(self, decisions: Sequence[int]) -> tuple[int]:
        return self.from_json(list(decisions))

    def to_json(self, arch: tuple[int]) -> list[int]:
        return list(arch)

    def from_json(self, data: Any) -> tuple[int]:
        if not (isinstance(data, list) and len(data) == 1 and isinstance(data[0], int)):
            raise ConfigError(f"not a counter architecture: {data!r}")
        return (data[0],)


class CountingStrategy:
    """Asks (0,), (1,), ...; after a tell it continues past the highest architecture told (so a
    resumed search asks anew for a trial that was in flight at the kill). Records every tell and,
    given the log's path, checks that each told trial is already in the log."""

    def __init__(self, log_path: str | None = None) -> None:
        self.next = 0
        self.told: list[tuple[tuple[int], float | None]] = []
        self.log_path = log_path

    def ask(self) -> tuple[int]:
        self.next += 1
        return (self.next - 1,)

    def tell(self, arch: tuple[int], reward: float | None) -> None:
        if self.log_path is not None:
            logged = read_trial_log(self.log_path).records[len(self.told)]
            assert (logged.arch, logged.reward) == (list(arch), reward), "told before it was logged"
        self.told.append((arch, reward))
        self.next = max(self.next, arch[0] + 1)


def stub_accuracy(k: int, seed: int) -> float:
    return ((37 * k + seed) % 100) / 100


@dataclass(frozen=True)
class StubEvaluate:
    """Appends ``{"arch", "seed", "start"}`` to the ``calls`` file as it starts and ``{"arch",
    "end"}`` as it ends; sleeps ``sleep_s``; raises for architectures in ``fail``, sleeps an hour
    for those in ``hang``, reports a NaN accuracy for those in ``nan``."""

    calls: str
    sleep_s: float = 0.0
    fail: frozenset[int] = frozenset()
    hang: frozenset[int] = frozenset()
    nan: frozenset[int] = frozenset()

    def _note(self, entry: dict[str, Any]) -> None:
        with open(self.calls, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def __call__(self, arch_json: list[int], seed: int) -> dict[str, float]:
        k = arch_json[0]
        self._note({"arch": k, "seed": seed, "start": time.time()})
        time.sleep(3600 if k in self.hang else self.sleep_s)
        if k in self.fail:
            raise ValueError(f"boom {k}\nsecond line")
        accuracy = float("nan") if k in self.nan else stub_accuracy(k, seed)
        self._note({"arch": k, "end": time.time()})
        return {"accuracy": accuracy, "params": 1000.0 + k}


def read_calls(path: str) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def load_torch() -> None:
    """A task that holds its Ray worker for a moment (so two run at once start two workers) and
    imports torch there, as each trial does."""
    import torch  # noqa: F401

    time.sleep(0.5)
