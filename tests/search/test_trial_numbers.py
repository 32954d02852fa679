"""Trial seeds across a resume: a resumed search never hands a new trial an old trial's seed."""

from __future__ import annotations

from edgevision.search.runner import next_trial_number, trial_seed
from edgevision.search.trial_log import TrialRecord


def logged(search_seed: int, numbers: list[int]) -> list[TrialRecord]:
    """Records of the trials submitted as ``numbers``, in that (finishing) order."""
    return [
        TrialRecord(i, [n], trial_seed(search_seed, n), "ok", {"accuracy": 0.5}, 0.5, "", 1.0, "t")
        for i, n in enumerate(numbers)
    ]


def test_numbering_goes_on_past_the_largest_number_logged() -> None:
    # Two workers: trial 2 was in flight when the search was killed, 3 and 4 had finished. The log
    # holds four records, so restarting at the record count (4) would reuse trial 4's seed.
    records = logged(7, [0, 1, 3, 4])
    assert next_trial_number(7, records) == 5
    assert trial_seed(7, 5) not in {r.seed for r in records}


def test_numbering_of_an_empty_or_one_worker_log() -> None:
    assert next_trial_number(3, []) == 0
    assert next_trial_number(3, logged(3, [0, 1, 2])) == 3


def test_seeds_are_per_search_and_stable() -> None:
    # sha256 of "seed/number": the same in every process (Python's hash() is salted per process).
    assert trial_seed(0, 0) == trial_seed(0, 0) != trial_seed(1, 0)
    assert 0 <= trial_seed(5, 123) < 2**31
