"""Trials on Ray: exactly ``budget`` trials logged in finishing order, each durable before the
strategy is told; failures and timeouts recorded and the search goes on; a SIGKILLed search
resumes without losing or re-running a finished trial; bad options refused before Ray starts.

Ray start-ups cost seconds here, so one module-wide local Ray serves the in-process searches, and
one mixed search (a crash, a hang, a NaN, two workers) serves several tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from runner_stubs import CounterSpace, CountingStrategy, StubEvaluate, load_torch, read_calls, stub_accuracy

import edgevision
from edgevision.errors import ConfigError, InputFileError, MissingDependencyError
from edgevision.search.runner import check_address, run_search, trial_seed
from edgevision.search.trial_log import read_trial_log

# Under pytest-xdist every test that starts a Ray runs on one worker, one after another: two local
# Rays starting at once on a 2-core machine can miss Ray's start-up deadline.
pytestmark = pytest.mark.xdist_group("ray")

ray = pytest.importorskip("ray")

HERE = Path(__file__).parent
SRC = str(Path(edgevision.__file__).parents[1])
CONFIG = {"space": "counter", "algo": "counting", "seed": 5, "objective": "accuracy"}
BUDGET = 8
FAIL, HANG, NAN = 1, 2, 3
TIMEOUT_S = 4.0


def expected_seed(search_seed: int, number: int) -> int:
    """The trial seed, computed independently of the runner."""
    return int(hashlib.sha256(f"{search_seed}/{number}".encode()).hexdigest()[:8], 16) // 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stub_search(log_path: Path, **options) -> list:
    """run_search over the stub space, by default with a strategy and evaluate it never reaches."""
    run = {"budget": 2, "config": CONFIG, "strategy": CountingStrategy(), "evaluate": StubEvaluate("unused")}
    run |= options
    return run_search(CounterSpace(), run.pop("strategy"), run.pop("evaluate"), log_path=log_path, **run)


def test_trial_seeds_are_fixed_and_distinct() -> None:
    assert [trial_seed(5, n) for n in range(3)] == [expected_seed(5, n) for n in range(3)]
    assert len({trial_seed(seed, n) for seed in range(3) for n in range(100)}) == 300


def complete_records(path: Path) -> int:
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


def test_a_killed_search_resumes_without_losing_or_rerunning_a_trial(tmp_path: Path) -> None:
    log, calls = tmp_path / "trials.jsonl", tmp_path / "calls.jsonl"
    command = [sys.executable, str(HERE / "run_stub_search.py"), str(log), str(calls), str(BUDGET)]
    env = {**os.environ, "PYTHONPATH": SRC}
    first = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while complete_records(log) < 3:
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline, "the search logged no 3 trials in 120 s"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGSTOP)  # hold the log still while it is read
        before = log.read_bytes()
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the Ray it started outlives its driver
        first.stderr.close()
    logged_before = before[: before.rfind(b"\n") + 1]
    assert 3 <= logged_before.count(b"\n") - 1 < BUDGET

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr

    assert log.read_bytes().startswith(logged_before)  # every finished trial kept, byte for byte
    records = read_trial_log(log).records
    assert [r.index for r in records] == list(range(BUDGET))
    # One worker: trial k is architecture (k,) with the k-th seed, also when re-run after the kill.
    assert [(r.arch, r.seed) for r in records] == [([k], expected_seed(7, k)) for k in range(BUDGET)]
    assert all(r.status == "ok" and r.reward == stub_accuracy(k, r.seed) for k, r in enumerate(records))
    started = [(call["arch"], call["seed"]) for call in read_calls(str(calls)) if "start" in call]
    # Evaluated once each, but for the one trial in flight at the kill, which ran again as it was.
    assert BUDGET <= len(started) <= BUDGET + 1
    assert sorted(set(started)) == [(k, expected_seed(7, k)) for k in range(BUDGET)]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with two CPUs whose workers can import runner_stubs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), SRC]))
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    # Start both workers (and their torch) before any trial's timeout clock runs.
    ray.get([ray.remote(num_cpus=1)(load_torch).remote() for _ in range(2)])
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed(local_ray, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two workers, eight trials: (1,) raises, (2,) hangs past the timeout, (3,) reports NaN."""
    folder = tmp_path_factory.mktemp("mixed")
    log, calls = folder / "trials.jsonl", str(folder / "calls.jsonl")
    strategy = CountingStrategy(str(log))
    evaluate = StubEvaluate(
        calls, sleep_s=0.3, fail=frozenset({FAIL}), hang=frozenset({HANG}), nan=frozenset({NAN})
    )
    progress = []
    records = run_search(
        CounterSpace(),
        strategy,
        evaluate,
        budget=BUDGET,
        workers=2,
        log_path=log,
        config=CONFIG,
        trial_timeout_s=TIMEOUT_S,
        progress=lambda *args: progress.append(args),
    )
    return SimpleNamespace(records=records, strategy=strategy, log=log, calls=calls, progress=progress)


def test_the_search_logs_exactly_budget_trials_and_tells_them_in_logged_order(mixed) -> None:
    records = mixed.records
    assert read_trial_log(mixed.log).records == records
    assert [r.index for r in records] == list(range(BUDGET))
    assert sorted(r.arch[0] for r in records) == list(range(BUDGET))
    assert mixed.strategy.told == [(tuple(r.arch), r.reward) for r in records]
    assert sorted(r.seed for r in records) == sorted(expected_seed(5, n) for n in range(BUDGET))
    assert [r.finished for r in records] == sorted(r.finished for r in records)
    # The hung trial was submitted third but finished (timed out) last: finishing order.
    assert records[-1].arch == [HANG]


def test_failures_and_timeouts_are_recorded_and_never_retried(mixed) -> None:
    by_arch = {r.arch[0]: r for r in mixed.records}
    failed = by_arch[FAIL]
    assert (failed.status, failed.error, failed.reward) == ("failed", "ValueError: boom 1", None)
    assert by_arch[HANG].status == "timeout" and by_arch[HANG].reward is None
    assert by_arch[HANG].error == "ran past the trial timeout of 4 s"
    assert by_arch[HANG].seconds >= TIMEOUT_S
    assert by_arch[NAN].status == "failed"
    assert by_arch[NAN].error == "metric 'accuracy' is nan, not a finite number"
    for k in set(range(BUDGET)) - {FAIL, HANG, NAN}:
        assert by_arch[k].status == "ok" and by_arch[k].error == ""
        assert by_arch[k].reward == by_arch[k].metrics["accuracy"] == stub_accuracy(k, by_arch[k].seed)
        assert by_arch[k].metrics["params"] == 1000 + k
    started = [call["arch"] for call in read_calls(mixed.calls) if "start" in call]
    assert sorted(started) == list(range(BUDGET))
    # The hung trial was cancelled, not left holding its CPU.
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU") != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU") == 2


def test_two_workers_run_trials_concurrently(mixed) -> None:
    calls = read_calls(mixed.calls)
    starts = {c["arch"]: c["start"] for c in calls if "start" in c}
    ends = {c["arch"]: c["end"] for c in calls if "end" in c}
    hang_cancelled = datetime.fromisoformat(mixed.records[-1].finished).timestamp()
    # While the hung trial held one worker, the other ran trials start to end.
    during = [k for k in ends if starts[HANG] < starts[k] and ends[k] < hang_cancelled]
    assert len(during) >= 3


def test_progress_reports_each_trial_with_the_best_so_far(mixed) -> None:
    assert [p[:3] for p in mixed.progress] == [(n + 1, BUDGET, r) for n, r in enumerate(mixed.records)]
    for n, (_, _, _, best) in enumerate(mixed.progress):
        rewards = [r.reward for r in mixed.records[: n + 1] if r.reward is not None]
        assert (best.reward if best else None) == (max(rewards) if rewards else None)


def test_resume_replays_the_log_and_extends_the_budget_without_rerunning(mixed, tmp_path: Path) -> None:
    log = tmp_path / "trials.jsonl"
    log.write_bytes(mixed.log.read_bytes())
    calls = str(tmp_path / "calls.jsonl")
    strategy = CountingStrategy(str(log))
    progress = []
    records = run_search(
        CounterSpace(),
        strategy,
        StubEvaluate(calls),
        budget=BUDGET + 2,
        workers=2,
        log_path=log,
        config={**CONFIG, "budget": BUDGET + 2},
        progress=lambda *args: progress.append(args),
    )
    assert records[:BUDGET] == mixed.records
    assert strategy.told == [(tuple(r.arch), r.reward) for r in records]
    assert sorted(call["arch"] for call in read_calls(calls) if "start" in call) == [BUDGET, BUDGET + 1]
    assert progress[0] == (BUDGET, BUDGET + 2, None, max(mixed.records, key=lambda r: r.reward or -1))
    assert len(progress) == 3


def test_a_log_that_holds_the_budget_runs_nothing(mixed, tmp_path: Path) -> None:
    log = tmp_path / "trials.jsonl"
    log.write_bytes(mixed.log.read_bytes())
    calls = tmp_path / "calls.jsonl"
    assert stub_search(log, budget=BUDGET, evaluate=StubEvaluate(str(calls)), workers=2) == mixed.records
    assert not calls.exists()
    with pytest.raises(ConfigError, match=f"already holds {BUDGET} trials, more than the budget 3"):
        stub_search(log, budget=3)


def test_an_unreachable_address_fails_fast_in_one_line(tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    log = tmp_path / "trials.jsonl"
    start = time.monotonic()
    with pytest.raises(
        ConfigError, match=f"cannot reach the Ray cluster at {address}: connection refused"
    ) as caught:
        stub_search(log, address=address)
    assert time.monotonic() - start < 10  # ray.init itself retries for minutes
    assert "\n" not in str(caught.value)
    assert not log.exists()
    with pytest.raises(ConfigError, match="must be host:port, ray://host:port or auto"):
        check_address("head-node")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget": 0}, "budget must be an integer >= 1, got 0"),
        ({"budget": 2.5}, "budget must be an integer >= 1, got 2.5"),
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"workers": True}, "workers must be an integer >= 1, got True"),
        ({"trial_timeout_s": float("nan")}, "trial_timeout_s must be a finite number"),
        ({"trial_timeout_s": 0.0}, "trial_timeout_s must be a finite number"),
        ({"config": {"space": "counter"}}, "needs an integer seed, got None"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path, options: dict, message: str):
    log = tmp_path / "trials.jsonl"
    with pytest.raises(ConfigError, match=message):
        stub_search(log, **options)
    assert not log.exists()


def test_a_log_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a folder"):
        stub_search(tmp_path)


def test_without_ray_a_one_line_missing_dependency_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(
        MissingDependencyError, match=r"ray is not installed: pip install 'edgevision\[search\]"
    ):
        stub_search(tmp_path / "t")
    assert not (tmp_path / "t").exists()
