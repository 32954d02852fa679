"""From how many entries is faiss faster than numpy at searching a face gallery?

For each size, ``--dim``-d random unit vectors (five entries per name) are searched with
single queries (the CLI's and the API's case: one face at a time), on one thread, by the two
exact paths of :mod:`edgevision.recognition.gallery`: numpy (inner products + argpartition) and
faiss ``IndexFlatIP``; each then picks the best entry per name the same way. Prints the median
ms per query over ``--queries`` queries (the two paths taking turns on each), the time to build
the faiss index (once per loaded gallery), the size from which faiss is faster (if any: the
gallery's default search follows this), and, up to ``--file-max`` entries, the first
search after opening a gallery file (reading every entry from SQLite: what one ``edgevision
gallery search`` pays).

    PYTHONPATH=src .venv/bin/python benchmarks/gallery_search.py
"""

from __future__ import annotations

import os

# One thread for OpenBLAS (numpy's inner products) too: its pool is sized when numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import typer  # noqa: E402
from _machine import cpu_name  # noqa: E402 (benchmarks/_machine.py)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from edgevision.recognition.gallery import (  # noqa: E402
    Gallery,
    best_per_name,
    exact_candidates,
    faiss_candidates,
    faiss_index,
)

PER_NAME, TOP = 5, 5


def median_ms(searches: list[Callable[[np.ndarray], object]], queries: np.ndarray) -> list[float]:
    """Median milliseconds of each ``search(query)`` over ``queries``, after one untimed query
    each. The searches take turns on each query, so a load that comes and goes on a shared
    machine slows them alike."""
    samples: list[list[float]] = [[] for _ in searches]
    for search in searches:
        search(queries[0])
    for query in queries:
        for search, times in zip(searches, samples):
            start = time.perf_counter()
            search(query)
            times.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(times) for times in samples]


def unit_vectors(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def time_searches(matrix: np.ndarray, names: list[str], probes: np.ndarray) -> tuple[float, float, float]:
    """Median ms per query of the numpy and faiss paths, and ms to build the faiss index."""
    candidates = min(len(matrix), (TOP - 1) * PER_NAME + 1)
    start = time.perf_counter()
    index = faiss_index(matrix)
    build_ms = (time.perf_counter() - start) * 1e3

    def numpy_search(query: np.ndarray) -> object:
        return best_per_name(exact_candidates(matrix, query, candidates), matrix, query, names, TOP)

    def faiss_search(query: np.ndarray) -> object:
        return best_per_name(faiss_candidates(index, query, candidates), matrix, query, names, TOP)

    numpy_ms, faiss_ms = median_ms([numpy_search, faiss_search], probes)
    return numpy_ms, faiss_ms, build_ms


def first_search_ms(matrix: np.ndarray, names: list[str], query: np.ndarray, folder: Path) -> float:
    """Milliseconds of opening a gallery file of ``matrix``'s entries and searching it once."""
    path = folder / f"gallery_{len(matrix)}.sqlite"
    source = Path(__file__)
    with Gallery.open(path, "random", matrix.shape[1], create=True) as gallery:
        for start in range(0, len(matrix), PER_NAME):
            gallery.add(names[start], matrix[start : start + PER_NAME], [source] * PER_NAME)
    start = time.perf_counter()
    with Gallery.open(path, "random", matrix.shape[1]) as gallery:
        gallery.search(query, TOP, method="exact")
    return (time.perf_counter() - start) * 1e3


def main(
    sizes: Annotated[
        str, typer.Option(help="gallery sizes, comma-separated")
    ] = "100,1000,10000,100000,1000000",
    dim: Annotated[int, typer.Option(min=1, help="embedding size")] = 128,
    queries: Annotated[int, typer.Option(min=1, help="timed queries per size and method")] = 200,
    file_max: Annotated[int, typer.Option(help="largest size also timed from a gallery file")] = 100_000,
) -> None:
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    counts = [int(size) for size in sizes.split(",")]
    table = Table(
        title=f"gallery search, {dim}-d, {PER_NAME} entries per name, top {TOP} names, "
        f"1 thread, median of {queries} single queries ({cpu_name()})"
    )
    columns = ("entries", "numpy ms", "faiss ms", "faiss / numpy", "faiss index build ms")
    for column in (*columns, "open + first search ms (SQLite)"):
        table.add_column(column, justify="right")
    crossover = None
    # In memory where the system has it: a gallery commits each add with an fsync, which on a disk
    # would make the files of this benchmark slow to write (their reading is what it times).
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as folder:
        for count in counts:
            matrix = unit_vectors(count, dim, rng)
            names = [f"person{i // PER_NAME}" for i in range(count)]
            probes = unit_vectors(queries, dim, rng)
            numpy_ms, faiss_ms, build_ms = time_searches(matrix, names, probes)
            if faiss_ms < numpy_ms and crossover is None:
                crossover = count
            elif faiss_ms >= numpy_ms:
                crossover = None  # faster only from a size on which it stays faster
            from_file = (
                f"{first_search_ms(matrix, names, probes[0], Path(folder)):.1f}" if count <= file_max else "-"
            )
            row = (f"{count:,}", f"{numpy_ms:.3f}", f"{faiss_ms:.3f}", f"{faiss_ms / numpy_ms:.2f}")
            table.add_row(*row, f"{build_ms:.1f}", from_file)
    Console().print(table)
    print(f"faiss faster from: {f'{crossover:,} entries' if crossover else 'no size measured'}")


if __name__ == "__main__":
    typer.run(main)
