"""Run a search's trials as Ray tasks, asynchronously, with a durable log.

``workers`` trials are in flight at once: the strategy is asked for an architecture whenever a
worker is free and told each result in finishing order, as Real et al. (AAAI 2019, Section 3)
run aging evolution on asynchronous workers. Each finished trial is appended to the
:class:`~edgevision.search.trial_log.TrialLog` and fsynced *before* the strategy learns of it,
so a killed search resumes by replaying the log through ``tell`` without losing or re-running a
finished trial (only the trials in flight at the kill run again).

Ray is local by default (``workers`` CPUs); ``address`` joins an existing cluster, whose nodes
need edgevision installed. A Ray already initialised in this process is used as it is.
"""

from __future__ import annotations

import hashlib
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevision.errors import ConfigError, MissingDependencyError
from edgevision.search.space import SearchSpace
from edgevision.search.strategy import Strategy
from edgevision.search.trial_log import TrialLog, TrialRecord, is_finite_number, now_iso
from edgevision.validation import check_integer, check_number

Evaluate = Callable[[Any, int], dict[str, float]]
Progress = Callable[[int, int, TrialRecord | None, TrialRecord | None], None]

# ray.init retries an unreachable head for minutes; a plain TCP connect answers in this long.
ADDRESS_CHECK_S = 5.0
MAX_TRIAL_TIMEOUT_S = 7 * 24 * 3600.0  # a week: beyond it, a typo rather than a trial
_ERROR_CHARS = 300


def trial_seed(search_seed: int, number: int) -> int:
    """The seed ``evaluate`` gets for the search's ``number``-th trial: 31 bits of
    sha256("seed/number"), the same in every process (Python's ``hash`` is salted per process),
    so a resumed search reproduces the seeds of the trials it re-runs."""
    digest = hashlib.sha256(f"{search_seed}/{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def next_trial_number(search_seed: int, records: list[TrialRecord]) -> int:
    """The submission number a resumed search goes on from: one past the largest whose seed the
    log holds. With several workers, trials finish out of order and a killed search loses the ones
    in flight, so the count of records can be below a number already used; reusing it would give
    a new trial an old trial's seed."""
    used = {record.seed for record in records}
    if not used:
        return 0
    # Each kill loses at most the trials in flight, so the numbers stay near the record count.
    numbers = [n for n in range(len(records) + 10_000) if trial_seed(search_seed, n) in used]
    return max(numbers, default=len(records) - 1) + 1


def one_line(error: BaseException) -> str:
    """``"ValueError: first line of the message"``, at most a few hundred characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text[:_ERROR_CHARS]


def _run_trial(evaluate: Evaluate, arch_json: Any, seed: int) -> dict[str, Any]:
    """The Ray task: ``{"metrics": ..., "seconds": ...}``, or ``{"error": ..., "seconds": ...}``
    when ``evaluate`` raised."""
    import torch

    # One thread per trial: the trials are the parallelism (one per CPU Ray grants), and a trial
    # spreading over every core would slow, and skew the timings of, the trials beside it.
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        metrics = evaluate(arch_json, seed)
    except Exception as error:
        return {"error": one_line(error), "seconds": time.perf_counter() - start}
    return {"metrics": metrics, "seconds": time.perf_counter() - start}


def _outcome(result: dict[str, Any], reward: Callable[[dict[str, float]], float]) -> dict[str, Any]:
    """The status, metrics, reward and error of a trial's result; non-finite numbers fail it."""
    failed = {"status": "failed", "metrics": {}, "reward": None}
    if "error" in result:
        return {**failed, "error": result["error"]}
    metrics = result["metrics"]
    if not isinstance(metrics, dict) or not all(isinstance(key, str) for key in metrics):
        return {**failed, "error": f"evaluate returned {type(metrics).__name__}, not a dict of metrics"}
    for key, value in metrics.items():
        if not is_finite_number(value):
            return {**failed, "error": f"metric {key!r} is {value!r}, not a finite number"}
    try:
        value = reward(metrics)
    except Exception as error:
        return {**failed, "error": f"reward: {one_line(error)}"}
    if not is_finite_number(value):
        return {**failed, "error": f"reward is {value!r}, not a finite number"}
    return {
        "status": "ok",
        "metrics": {k: float(v) for k, v in metrics.items()},
        "reward": float(value),
        "error": "",
    }


def check_address(address: str) -> None:
    """ConfigError unless the Ray head at ``address`` (``host:port``, ``ray://host:port``, or
    ``auto``, which Ray resolves itself and refuses at once) accepts a TCP connection within
    :data:`ADDRESS_CHECK_S`."""
    if address == "auto":
        return
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ConfigError(f"address {address!r} must be host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_CHECK_S):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {reason.lower()}") from None


def import_ray() -> Any:
    """The ray module; MissingDependencyError naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray is not installed: pip install 'edgevision[search]'") from None
    return ray


@contextmanager
def _ray_session(ray: Any, address: str | None, workers: int) -> Iterator[None]:
    """Ray up for the ``with`` block: started locally (or joined at ``address``) and shut down
    after, unless this process had already initialised it."""
    if ray.is_initialized():
        yield
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        # address="local": never join a cluster that RAY_ADDRESS happens to name.
        try:
            ray.init(address="local", num_cpus=workers, include_dashboard=False, **quiet)
        except Exception as error:  # Ray raises a bare Exception when its processes start too slowly
            raise ConfigError(f"could not start a local Ray: {one_line(error)}") from None
    else:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ConfigError(f"cannot join the Ray cluster at {address}: {one_line(error)}") from None
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class _InFlight:
    arch: Any  # JSON form
    seed: int
    started: float  # time.monotonic() at submission
    deadline: float  # time.monotonic() past which it times out; inf without a timeout


def _best(records: list[TrialRecord]) -> TrialRecord | None:
    ok = [record for record in records if record.reward is not None]
    return max(ok, key=lambda record: record.reward) if ok else None


def run_search(
    space: SearchSpace,
    strategy: Strategy,
    evaluate: Evaluate,
    *,
    budget: int,
    log_path: str | Path,
    config: dict[str, Any],
    workers: int = 1,
    address: str | None = None,
    trial_timeout_s: float | None = None,
    reward: Callable[[dict[str, float]], float] = lambda metrics: metrics["accuracy"],
    progress: Progress | None = None,
) -> list[TrialRecord]:
    """Evaluate architectures that ``strategy`` proposes until the log at ``log_path`` holds
    ``budget`` trials; return its records in logged (finishing) order.

    Args:
        evaluate: picklable ``evaluate(arch_json, trial_seed) -> metrics``, run in Ray workers
            on one torch thread each.
        config: the search's configuration (plain JSON), the log's header; its integer ``seed``
            seeds the trials. It should name the space, the algorithm and the objective: resuming
            refuses a log whose config differs except in budget, workers, address and timeout.
        workers: trials in flight at once (and the local Ray's CPUs).
        address: a Ray cluster to join (``host:port``, ``ray://host:port`` or ``auto``).
        trial_timeout_s: wall time from a trial's submission past which it is cancelled
            (``ray.cancel(force=True)``) and logged as ``"timeout"``.
        reward: ``reward(metrics)``, higher is better, computed in this process.
        progress: called as ``progress(done, budget, record, best_so_far)`` after each trial,
            and once with ``record=None`` after a resumed log has been replayed.

    A trial that raises, returns a non-finite metric or reward, or times out is logged (status
    ``"failed"`` / ``"timeout"``, a one-line error), counts toward the budget, is told as reward
    ``None`` and is not retried.

    Raises:
        ConfigError: a bad budget, workers or timeout; the log is of another search or holds more
            than ``budget`` trials; ``address`` cannot be reached.
        InputFileError: ``log_path`` cannot be written or is not a trial log.
        MissingDependencyError: Ray is not installed.
    """
    budget = check_integer("budget", budget, 1)
    workers = check_integer("workers", workers, 1)
    timeout = math.inf
    if trial_timeout_s is not None:
        timeout = check_number("trial_timeout_s", trial_timeout_s, 0.0, MAX_TRIAL_TIMEOUT_S, low_open=True)
    seed = config.get("seed") if isinstance(config, dict) else None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"the search config needs an integer seed, got {seed!r}")
    ray = import_ray()
    if address is not None:
        check_address(address)
    with TrialLog.open(log_path, config) as log:
        if len(log.records) > budget:
            raise ConfigError(
                f"trial log {log.path} already holds {len(log.records)} trials, more than the budget {budget}"
            )
        for record in log.records:
            strategy.tell(space.from_json(record.arch), record.reward)
        if log.records and progress is not None:
            progress(len(log.records), budget, None, _best(log.records))
        if len(log.records) < budget:
            with _ray_session(ray, address, workers):
                _run_trials(
                    ray, space, strategy, evaluate, log, budget, workers, timeout, seed, reward, progress
                )
        return list(log.records)


def _run_trials(
    ray: Any,
    space: SearchSpace,
    strategy: Strategy,
    evaluate: Evaluate,
    log: TrialLog,
    budget: int,
    workers: int,
    timeout: float,
    seed: int,
    reward: Callable[[dict[str, float]], float],
    progress: Progress | None,
) -> None:
    task = ray.remote(num_cpus=1, max_retries=0)(_run_trial)
    evaluate_ref = ray.put(evaluate)  # shipped to the object store once, not with every trial
    in_flight: dict[Any, _InFlight] = {}
    submitted = next_trial_number(seed, log.records)
    try:
        while len(log.records) < budget:
            while len(in_flight) < workers and len(log.records) + len(in_flight) < budget:
                arch = space.to_json(strategy.ask())
                number_seed = trial_seed(seed, submitted)
                submitted += 1
                now = time.monotonic()
                in_flight[task.remote(evaluate_ref, arch, number_seed)] = _InFlight(
                    arch, number_seed, now, now + timeout
                )
            first_deadline = min(trial.deadline for trial in in_flight.values())
            wait_s = None if math.isinf(first_deadline) else max(0.0, first_deadline - time.monotonic())
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait_s)
            now = time.monotonic()
            expired = [ref for ref, trial in in_flight.items() if trial.deadline <= now]
            if expired:  # a result that came in before its deadline is a result, not a timeout
                done, _ = ray.wait(expired, num_returns=len(expired), timeout=0)
                ready = list(dict.fromkeys([*ready, *done]))
            finished = []
            for ref in ready:
                trial = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as error:  # the worker died, ran out of memory, ...
                    result = {"error": one_line(error), "seconds": time.monotonic() - trial.started}
                finished.append((trial, result["seconds"], _outcome(result, reward)))
            for ref in [ref for ref in expired if ref in in_flight]:
                ray.cancel(ref, force=True)
                trial = in_flight.pop(ref)
                error = f"ran past the trial timeout of {timeout:g} s"
                outcome = {"status": "timeout", "metrics": {}, "reward": None, "error": error}
                finished.append((trial, now - trial.started, outcome))
            for trial, seconds, outcome in finished:
                record = TrialRecord(
                    index=len(log.records),
                    arch=trial.arch,
                    seed=trial.seed,
                    seconds=seconds,
                    finished=now_iso(),
                    **outcome,
                )
                log.append(record)  # durable before the strategy learns from it
                strategy.tell(space.from_json(record.arch), record.reward)
                if progress is not None:
                    progress(len(log.records), budget, record, _best(log.records))
    finally:
        for ref in in_flight:  # on a cluster they would run on after an interrupted search
            ray.cancel(ref, force=True)
