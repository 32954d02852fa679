"""Measure children's int8 latency with the engine, fit the latency predictor, check it on held-out
children, and write the model shipped in the package.

Random genotypes of the NASNet space (``get_space("nasnet").sample``, as a search draws them) are
each built by :func:`edgevision.search.latency.
measure_latency_times` (int8 plan, ONNX Runtime, one thread, a batch of 4 32x32 patches); the
first ``--fit`` train a :class:`~edgevision.search.latency.LatencyModel`, the next ``--held-out``
check it: mean absolute % error and Spearman rank correlation. Each measurement is appended to
``--measurements`` (JSON lines) as it finishes, and a rerun reuses those already there, so an
interrupted run resumes. The model (with the check in its ``meta``) goes to ``--out``.

    python benchmarks/search_latency.py --out src/edgevision/search/latency_model.json
"""

from __future__ import annotations

import json
import logging
import random
import time
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from _machine import cpu_name  # benchmarks/_machine.py
from scipy.stats import spearmanr

from edgevision.search.cell_space import get_space
from edgevision.search.latency import TIMING_BATCH, LatencyModel, measure_latency_times, relative_spread


def main(
    out: Annotated[Path, typer.Option(help="where the fitted model goes")] = Path("latency_model.json"),
    measurements: Annotated[Path, typer.Option(help="JSON lines of measurements (reused)")] = Path(
        "/tmp/search_latency.jsonl"
    ),
    fit: Annotated[int, typer.Option(help="children the model is fitted to")] = 30,
    held_out: Annotated[int, typer.Option(help="children it is checked on")] = 12,
    seed: int = 0,
    repeats: int = 50,
    ridge: float = 1e-3,
    statistic: Annotated[str, typer.Option(help="median_ms, or min_ms on a busy machine")] = "median_ms",
) -> None:
    logging.disable(logging.WARNING)  # the ONNX exporter's opset notes, once per child
    warnings.filterwarnings("ignore")
    rng = random.Random(seed)
    genotypes = [get_space("nasnet").sample(rng) for _ in range(fit + held_out)]
    done = {}
    if measurements.is_file():
        for line in measurements.read_text().splitlines():
            record = json.loads(line)
            done[json.dumps(record["genotype"], sort_keys=True)] = record
    rows = []
    for i, genotype in enumerate(genotypes):
        key = json.dumps(genotype.to_dict(), sort_keys=True)
        if key not in done:
            start = time.perf_counter()
            times = measure_latency_times(genotype, repeats=repeats)
            done[key] = {
                "genotype": genotype.to_dict(),
                "median_ms": float(np.median(times)),
                "min_ms": float(times.min()),
                "iqr_over_median": relative_spread(times),
                "seconds": time.perf_counter() - start,
            }
            with open(measurements, "a") as handle:
                handle.write(json.dumps(done[key]) + "\n")
        record = done[key]
        rows.append(record)
        print(
            f"{i:3d} {record['median_ms']:7.2f} ms (min {record['min_ms']:6.2f})  "
            f"spread {100 * record['iqr_over_median']:4.1f} %  "
            f"cost {record['seconds']:5.1f} s",
            flush=True,
        )
    latencies = np.array([r[statistic] for r in rows])
    model = LatencyModel.fit(genotypes[:fit], latencies[:fit], ridge=ridge)
    predicted = np.array([model.predict(g) for g in genotypes[fit:]])
    actual = latencies[fit:]
    mape = float(np.mean(np.abs(predicted - actual) / actual) * 100)
    rho = float(spearmanr(predicted, actual).statistic)
    model.meta = {
        "fitted_to": f"{fit} random NASNet-space children (seed {seed}), checked on {held_out} others",
        "held_out_mean_abs_percent_error": round(mape, 2),
        "held_out_spearman": round(rho, 3),
        "timing": f"int8 plan, ONNX Runtime, 1 thread (thread CPU time), batch {TIMING_BATCH} x 32x32, "
        f"{statistic} of {repeats}",
        "cpu": cpu_name(),
        "command": f"python benchmarks/search_latency.py --out src/edgevision/search/latency_model.json "
        f"--fit {fit} --held-out {held_out} --statistic {statistic}",
    }
    model.save(out)
    spread = np.array([r["iqr_over_median"] for r in rows]) * 100
    cost = np.array([r["seconds"] for r in rows])
    print(f"latency {latencies.min():.2f}-{latencies.max():.2f} ms (median {np.median(latencies):.2f})")
    print(f"repeat spread (IQR / median): median {np.median(spread):.1f} %, max {spread.max():.1f} %")
    print(f"cost of one measurement (export + build + time): median {np.median(cost):.1f} s")
    print(f"held-out: mean abs error {mape:.1f} %, Spearman {rho:.3f}; model written to {out}")


if __name__ == "__main__":
    typer.run(main)
