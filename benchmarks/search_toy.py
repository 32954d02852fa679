"""Search algorithms on the toy problem of Real et al. 2019, Appendix C: 100-bit strings, fitness =
fraction of ones + N(0, 0.01), one-bit mutations, evolution with P = 100, S = 10.

Runs aging evolution, non-aging evolution, the PPO controller (paper hyper-parameters, batch 20)
and random search for ``--budget`` models on each of ``--seeds`` seeds, prints the mean best-so-far
TRUE fitness (min - max over seeds) at every ``--every`` models, and draws the curves
(mean, min-max band) to ``--out``. The true fitness, not the noisy one the algorithms see: the best
noisy value rises with the number of samples alone (see :func:`edgevision.search.toy.run_toy`).

    PYTHONPATH=src .venv/bin/python benchmarks/search_toy.py --out docs/search_toy.png
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from edgevision.search.algorithms import make_strategy
from edgevision.search.plots import plot_best_so_far
from edgevision.search.toy import BitStringSpace, run_toy

OPTIONS = {  # Appendix C's evolution settings; the controller at Zoph et al.'s defaults
    "evolution": {"population": 100, "sample": 10},
    "evolution-nonaging": {"population": 100, "sample": 10},
    "rl": {},
    "random": {},
}


def main(
    seeds: Annotated[int, typer.Option(min=1, help="seeds per algorithm (0, 1, ...)")] = 5,
    budget: Annotated[int, typer.Option(min=1, help="models evaluated per run")] = 2000,
    every: Annotated[int, typer.Option(min=1, help="table rows every this many models")] = 250,
    algos: Annotated[str, typer.Option(help="comma-separated algorithms")] = ",".join(OPTIONS),
    out: Annotated[Path, typer.Option(help="figure file (.png, .pdf, .svg)")] = Path("search_toy.png"),
) -> None:
    torch.set_num_threads(1)
    space = BitStringSpace(100)
    curves: dict[str, list[list[float]]] = {}
    for algo in algos.split(","):
        start = time.perf_counter()
        curves[algo] = [
            run_toy(make_strategy(algo, space, seed, **OPTIONS.get(algo, {})), budget, seed)
            for seed in range(seeds)
        ]
        print(f"{algo}: {seeds} x {budget} models in {time.perf_counter() - start:.1f} s")
    table = Table(title=f"toy problem, best-so-far true fitness, mean (min-max) over {seeds} seeds")
    table.add_column("models", justify="right")
    for algo in curves:
        table.add_column(algo, justify="right")
    checkpoints = sorted({*range(every, budget + 1, every), budget})
    for models in checkpoints:
        cells = []
        for runs in curves.values():
            values = np.asarray(runs)[:, models - 1]
            cells.append(f"{values.mean():.3f} ({values.min():.2f}-{values.max():.2f})")
        table.add_row(str(models), *cells)
    Console(width=140).print(table)  # the full table, also when piped to a file
    title = "Toy problem (Real et al. 2019, App. C): 100 bits, noise 0.01"
    figure = plot_best_so_far(curves, out, "best true fitness (ones / 100)", title=title)
    print(f"figure: {figure}")


if __name__ == "__main__":
    typer.run(main)
