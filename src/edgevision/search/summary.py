"""Reading finished searches back: best-so-far curves from trial logs, and runs grouped by
algorithm for comparison over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgevision.errors import ConfigError, InputFileError
from edgevision.search.trial_log import TrialRecord, read_trial_log

LOG_NAME = "trials.jsonl"


def best_so_far(records: Sequence[TrialRecord], metric: str) -> list[float]:
    """``(N,)``: value i is the largest ``metric`` among the first i + 1 trials of the log (in
    logged order, failed trials adding nothing); 0 until a trial succeeds."""
    curve, best = [], 0.0
    for record in records:
        if record.status == "ok":
            best = max(best, record.metrics[metric])
        curve.append(best)
    return curve


def read_runs(runs: Sequence[str | Path]) -> dict[str, list[list[TrialRecord]]]:
    """The records of each run folder (or trial log), grouped by algorithm in the order first
    seen; every run must be of one space and objective, and no two of the same seed and algorithm.

    Raises:
        InputFileError: a folder without a trial log, or a log that cannot be read.
        ConfigError: runs of different spaces or objectives, or a repeated (algorithm, seed).
    """
    groups: dict[str, list[list[TrialRecord]]] = {}
    seen: set[tuple[str, int]] = set()
    kind = None
    for run in runs:
        path = Path(run)
        log = path / LOG_NAME if path.is_dir() else path
        if not log.is_file():
            raise InputFileError(f"{run}: no {LOG_NAME} (not a search run)")
        contents = read_trial_log(log)
        config = contents.config
        this_kind = (config.get("space"), repr(config.get("objective")))
        if kind is not None and this_kind != kind:
            raise ConfigError(
                f"{run} is a search of {this_kind[0]!r} / {this_kind[1]}, not {kind[0]!r} / {kind[1]}"
            )
        kind = this_kind
        key = (str(config.get("algo")), config.get("seed"))
        if key in seen:
            raise ConfigError(f"{run}: a second run of {key[0]} with seed {key[1]}")
        seen.add(key)
        groups.setdefault(key[0], []).append(contents.records)
    for algo, seeds in groups.items():
        shortest = min(len(records) for records in seeds)
        if shortest == 0:
            raise ConfigError(f"a run of {algo} has no finished trial yet")
        groups[algo] = [records[:shortest] for records in seeds]  # equal budgets per algorithm
    return groups
