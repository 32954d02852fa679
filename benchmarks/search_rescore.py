"""Re-evaluate what searches found, free of the selection bias of a noisy proxy.

A search's best logged accuracy is the maximum of noisy measurements (seed std about 0.02 on the
proxy task), so it flatters whichever algorithm sampled most widely. For each run this script
retrains the ``--top`` children with the highest logged accuracy on ``--seeds`` fresh trial seeds
(the same proxy task, as the run's log records it) and prints, per algorithm (mean over runs):

- logged: the best logged accuracy (what the best-so-far curve ends at);
- re-evaluated: the fresh mean accuracy of the logged best child;
- best of top: the best fresh mean among the top children;
- last quarter: the mean logged accuracy of the last quarter of the run's children (where the
  algorithm was sampling when the budget ran out).

    PYTHONPATH=src .venv/bin/python benchmarks/search_rescore.py RUN... [--top 5] [--seeds 3]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from edgevision.search.proxy_task import ProxyTask
from edgevision.search.runner import trial_seed
from edgevision.search.summary import read_runs

FRESH_SEED_BASE = 10**6  # fresh trial seeds, far from any search's trial numbers


def rescore(
    runs: Annotated[list[Path], typer.Argument(help="search run folders")],
    top: Annotated[int, typer.Option(help="children re-evaluated per run")] = 5,
    seeds: Annotated[int, typer.Option(help="fresh seeds per child")] = 3,
) -> None:
    config, groups = read_runs(runs)
    task_options = {k: v for k, v in config["task"].items() if k not in ("train_file", "val_file")}
    task = ProxyTask(config["task"]["train_file"], config["task"]["val_file"], **task_options)
    table = Table(title=f"re-evaluated on {seeds} fresh seeds (top {top} per run), mean over runs")
    for column in ("algorithm", "runs", "logged best", "re-evaluated", "best of top", "last quarter"):
        table.add_column(column, justify="left" if column == "algorithm" else "right")
    for algo, algo_runs in groups.items():
        rows = []
        for records in algo_runs:
            ok = sorted((r for r in records if r.status == "ok"), key=lambda r: -r.metrics["accuracy"])[:top]
            fresh = [
                np.mean(
                    [
                        task.evaluate(r.arch, trial_seed(FRESH_SEED_BASE + s, r.index))["accuracy"]
                        for s in range(seeds)
                    ]
                )
                for r in ok
            ]
            quarter = [r.metrics["accuracy"] for r in records[-len(records) // 4 :] if r.status == "ok"]
            rows.append((ok[0].metrics["accuracy"], fresh[0], max(fresh), float(np.mean(quarter))))
        means = np.mean(rows, axis=0)
        table.add_row(algo, str(len(algo_runs)), *(f"{value:.4f}" for value in means))
        Console().print(f"{algo}: per run " + "; ".join(" / ".join(f"{v:.3f}" for v in row) for row in rows))
    Console().print(table)


if __name__ == "__main__":
    typer.run(rescore)
