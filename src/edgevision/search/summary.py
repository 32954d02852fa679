"""Reading finished searches back: best-so-far curves from trial logs, and runs grouped by
algorithm for comparison over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgevision.errors import ConfigError, InputFileError
from edgevision.search.trial_log import TrialRecord, read_trial_log

LOG_NAME = "trials.jsonl"


def best_so_far(records: Sequence[TrialRecord], metric: str) -> list[float]:
    """``(N,)``: value i is the largest ``metric`` (``"reward"``: the search's reward) among the
    first i + 1 trials of the log (in logged order, failed trials adding nothing); 0 until a trial
    succeeds."""
    curve, best = [], 0.0
    for record in records:
        if record.status == "ok":
            best = max(best, record.reward if metric == "reward" else record.metrics[metric])
        curve.append(best)
    return curve


def read_runs(runs: Sequence[str | Path]) -> tuple[dict[str, Any], dict[str, list[list[TrialRecord]]]]:
    """The first run's config, and the records of each run folder (or trial log) grouped by
    algorithm in the order first seen, each algorithm's runs cut to its shortest. The runs must
    share one space, objective and proxy task, an algorithm's runs one set of options, and no two
    runs one algorithm and seed.

    Raises:
        InputFileError: a folder without a trial log, or a log that cannot be read.
        ConfigError: runs that differ so, or a repeated (algorithm, seed).
    """
    groups: dict[str, list[list[TrialRecord]]] = {}
    seen: set[tuple[str, int]] = set()
    options: dict[str, Any] = {}
    first: dict[str, Any] | None = None
    for run in runs:
        path = Path(run)
        log = path / LOG_NAME if path.is_dir() else path
        if not log.is_file():
            raise InputFileError(f"{run}: no {LOG_NAME} (not a search run)")
        contents = read_trial_log(log)
        config = contents.config
        first = first or config
        for key, what in (("space", "space"), ("objective", "objective"), ("task", "proxy task")):
            if config.get(key) != first.get(key):
                raise ConfigError(
                    f"{run} differs from {runs[0]} in its {what}: {config.get(key)} vs {first.get(key)}"
                )
        algo, seed = str(config.get("algo")), config.get("seed")
        if options.setdefault(algo, config.get("strategy")) != config.get("strategy"):
            raise ConfigError(f"{run}: {algo} with options {config.get('strategy')}, not {options[algo]}")
        if (algo, seed) in seen:
            raise ConfigError(f"{run}: a second run of {algo} with seed {seed}")
        seen.add((algo, seed))
        groups.setdefault(algo, []).append(contents.records)
    for algo, seeds in groups.items():
        shortest = min(len(records) for records in seeds)
        if shortest == 0:
            raise ConfigError(f"a run of {algo} has no finished trial yet")
        groups[algo] = [records[:shortest] for records in seeds]  # equal budgets per algorithm
    return first or {}, groups
