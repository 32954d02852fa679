"""Is the proxy task informative? Accuracy spread across architectures against seed noise, and
the time one child takes.

Trains NASNet-A, AmoebaNet-A and ``--random`` random NASNet-space genotypes, each with
``--seeds`` trial seeds, with :class:`edgevision.search.proxy_task.ProxyTask` (its defaults unless
given), torch on one thread, and prints per genotype the accuracies, then: the standard deviation
across genotypes of their mean accuracy, the pooled standard deviation across seeds, and the
median wall time of one child (build, train, validate). The patch caches are built first when
missing (a one-time cost, printed).

    python benchmarks/search_proxy.py --cache /tmp/face_patches
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from typing import Annotated

import typer
from _machine import cpu_name  # benchmarks/_machine.py

from edgevision.data.face_patches import cached_face_patches
from edgevision.data.paths import default_data_dir
from edgevision.models.amoebanet import AMOEBANET_A
from edgevision.models.nasnet import NASNET_A
from edgevision.search.cell_space import get_space
from edgevision.search.proxy_task import ProxyTask


def main(
    cache: Annotated[Path, typer.Option(help="folder of the patch caches")] = Path("/tmp/face_patches"),
    random_count: Annotated[int, typer.Option("--random", help="random genotypes")] = 8,
    seeds: int = 2,
    options: Annotated[str, typer.Option(help="ProxyTask keyword options as JSON")] = "{}",
) -> None:
    root = default_data_dir() / "widerface"
    start = time.perf_counter()
    files = [cached_face_patches(root, split, cache) for split in ("train", "val")]
    print(f"patch caches ready in {time.perf_counter() - start:.1f} s: {', '.join(map(str, files))}")
    task = ProxyTask(*files, **json.loads(options))
    rng = random.Random(0)
    genotypes = [("NASNet-A", NASNET_A), ("AmoebaNet-A", AMOEBANET_A)]
    genotypes += [(f"random {i}", get_space("nasnet").sample(rng)) for i in range(random_count)]
    means, variances, times = [], [], []
    for name, genotype in genotypes:
        results = [task.evaluate(genotype.to_dict(), seed) for seed in range(seeds)]
        accuracies = [r["accuracy"] for r in results]
        times += [r["train_seconds"] for r in results]
        means.append(statistics.mean(accuracies))
        variances.append(statistics.variance(accuracies))
        print(
            f"{name:12s} accuracy {' '.join(f'{a:.3f}' for a in accuracies)}"
            f"  params {results[0]['params']:6d}  MAdds {results[0]['madds'] / 1e6:.2f}M",
            flush=True,
        )
    settings = {k: v for k, v in vars(task).items() if not k.startswith("_")}
    print(f"{cpu_name()}; {settings}")
    print(
        f"across genotypes: std {statistics.stdev(means):.4f}, range {max(means) - min(means):.4f}; "
        f"across seeds: pooled std {statistics.mean(variances) ** 0.5:.4f}; "
        f"one child: median {statistics.median(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    typer.run(main)
