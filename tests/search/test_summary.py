"""Reading searches back: best-so-far curves and runs grouped by algorithm."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from edgevision.errors import ConfigError, InputFileError
from edgevision.search.plots import plot_pareto
from edgevision.search.summary import best_so_far, read_runs
from edgevision.search.trial_log import TrialLog, TrialRecord


def record(index: int, accuracy: float | None) -> TrialRecord:
    """A trial with ``accuracy`` (``None``: a failed trial)."""
    ok = accuracy is not None
    return TrialRecord(
        index=index,
        arch=[index],
        seed=index,
        status="ok" if ok else "failed",
        metrics={"accuracy": accuracy} if ok else {},
        reward=accuracy if ok else None,
        error="" if ok else "RuntimeError: boom",
        seconds=1.0,
        finished="2026-12-03T00:00:00Z",
    )


def write_run(
    folder: Path, algo: str, seed: int, accuracies: list[float | None], space: str = "nasnet", **extra: object
) -> Path:
    folder.mkdir(parents=True)
    config = {"space": space, "algo": algo, "seed": seed, "objective": {"reward": "accuracy"}, **extra}
    with TrialLog.open(folder / "trials.jsonl", config) as log:
        for index, accuracy in enumerate(accuracies):
            log.append(record(index, accuracy))
    return folder


def test_best_so_far_is_the_running_maximum_over_successful_trials() -> None:
    records = [record(0, None), record(1, 0.6), record(2, 0.5), record(3, None), record(4, 0.7)]
    # Hand-computed: nothing until trial 1 succeeds; failures and worse trials keep the best.
    assert best_so_far(records, "accuracy") == [0.0, 0.6, 0.6, 0.6, 0.7]
    # The reward, not a metric, when asked for it (a latency objective's runs).
    penalised = [replace(r, reward=None if r.reward is None else 1 - r.reward) for r in records]
    assert best_so_far(penalised, "reward") == [0.0, 0.4, 0.5, 0.5, 0.5]


def test_runs_are_grouped_by_algorithm_and_cut_to_one_length(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", "evolution", 0, [0.5, 0.6, 0.7])
    b = write_run(tmp_path / "b", "evolution", 1, [0.4, 0.8])
    c = write_run(tmp_path / "c", "random", 0, [0.5, None, 0.9])
    config, groups = read_runs([a, c, b / "trials.jsonl"])
    assert config["algo"] == "evolution" and config["seed"] == 0
    assert list(groups) == ["evolution", "random"]
    assert [[r.index for r in run] for run in groups["evolution"]] == [[0, 1], [0, 1]]
    assert [best_so_far(run, "accuracy") for run in groups["random"]] == [[0.5, 0.5, 0.9]]


def test_runs_of_other_spaces_repeats_and_non_runs_are_refused(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", "evolution", 0, [0.5])
    other = write_run(tmp_path / "other", "random", 0, [0.5], space="amoeba")
    again = write_run(tmp_path / "again", "evolution", 0, [0.6])
    with pytest.raises(ConfigError, match="in its space: amoeba vs nasnet"):
        read_runs([a, other])
    with pytest.raises(ConfigError, match="a second run of evolution with seed 0"):
        read_runs([a, again])
    longer = write_run(tmp_path / "longer", "evolution", 1, [0.6], task={"epochs": 9})
    with pytest.raises(ConfigError, match="proxy task"):
        read_runs([a, longer])
    bigger = write_run(tmp_path / "bigger", "evolution", 2, [0.6], strategy={"population": 9})
    with pytest.raises(ConfigError, match="evolution with options"):
        read_runs([a, bigger])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no trials.jsonl"):
        read_runs([tmp_path / "empty"])


def test_pareto_figure_is_written(tmp_path: Path) -> None:
    path = plot_pareto(
        [(0.9, 2.0), (0.8, 1.0), (0.85, 3.0)], [(0.9, 2.1), (0.8, 0.9)], 1.5, tmp_path / "p.png"
    )
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300
