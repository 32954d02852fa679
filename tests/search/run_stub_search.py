"""``python run_stub_search.py LOG CALLS BUDGET``: a stub search on local Ray (one worker, 0.3 s
trials), for the test that kills a search and resumes it."""

from __future__ import annotations

import sys

from runner_stubs import CounterSpace, CountingStrategy, StubEvaluate

from edgevision.search.runner import run_search

SEED = 7

if __name__ == "__main__":
    log, calls, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = {"space": "counter", "algo": "counting", "seed": SEED, "objective": "accuracy", "budget": budget}
    run_search(
        CounterSpace(),
        CountingStrategy(log),
        StubEvaluate(calls, sleep_s=0.3),
        budget=budget,
        log_path=log,
        config=config,
    )
