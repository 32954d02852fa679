"""How long does edgevision take to start, and how much memory does that cost?

Runs each command in ``--runs`` fresh interpreters (the same Python as this script, with its
``PYTHONPATH``) and prints the median wall time and the median peak resident memory (the
child's ``VmHWM`` from ``/proc``, Linux only: ``ru_maxrss`` would count the pages the child
shared with this process before it ran Python): ``edgevision --help`` (exactly what the console
script runs), ``import edgevision``, and, for scale, ``import torch`` alone.

    PYTHONPATH=src .venv/bin/python benchmarks/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

# label -> Python code run with ``python -c``; the console script's own wrapper is these two lines.
CASES = {
    "edgevision --help": "import sys; sys.argv = ['edgevision', '--help']; "
    "from edgevision.cli import main; main()",
    'python -c "import edgevision"': "import edgevision",
    'python -c "import torch" (for scale)': "import torch",
}


# Run first in each child: at exit, its peak resident memory goes to stderr ("VmHWM:  123 kB").
REPORT_PEAK = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))))\n"
)


def run_once(code: str) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one fresh ``python -c code``."""
    start = time.perf_counter()
    command = [sys.executable, "-c", REPORT_PEAK + code]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    peak = [line for line in done.stderr.splitlines() if line.startswith("VmHWM")]
    if done.returncode != 0 or not peak:
        raise SystemExit(f"{code!r} exited with {done.returncode}: {done.stderr[-500:]}")
    return elapsed, int(peak[-1].split()[1]) / 1024


def main(runs: Annotated[int, typer.Option(min=1, help="fresh processes per command")] = 5) -> None:
    table = Table(title=f"start-up, median of {runs} fresh processes ({sys.executable})")
    for column in ("command", "median s", "min s", "peak RSS MiB"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for label, code in CASES.items():
        run_once(code)  # warm the file cache: the figures are for a used machine, not a cold boot
        times, memory = zip(*(run_once(code) for _ in range(runs)))
        table.add_row(
            label, f"{statistics.median(times):.2f}", f"{min(times):.2f}", f"{statistics.median(memory):.0f}"
        )
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
