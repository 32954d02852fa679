"""The trial log: records round-trip, every append is fsynced, a resumed log must be of the same
search, and a killed search's cut-short last line is dropped while corruption elsewhere is not."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from edgevision.errors import ConfigError, EdgeVisionWarning, InputFileError
from edgevision.search import trial_log
from edgevision.search.trial_log import TrialLog, TrialRecord, read_trial_log

CONFIG = {"space": "nasnet", "algo": "evolution", "seed": 3, "objective": "accuracy", "budget": 10}


def record(index: int, status: str = "ok") -> TrialRecord:
    ok = status == "ok"
    return TrialRecord(
        index=index,
        arch={"normal": [[0, 1, "sep_conv_3x3", "identity"]], "k": index},
        seed=1000 + index,
        status=status,
        metrics={"accuracy": 0.5 + index / 100, "params": 1234.0} if ok else {},
        reward=0.5 + index / 100 if ok else None,
        error="" if ok else "ValueError: boom",
        seconds=1.5,
        finished="2026-12-03T17:00:00.000+00:00",
    )


def write_log(path: Path, count: int) -> list[TrialRecord]:
    records = [record(i, ("ok", "failed", "timeout")[i % 3]) for i in range(count)]
    with TrialLog.open(path, CONFIG) as log:
        for r in records:
            log.append(r)
    return records


def test_records_round_trip_after_a_header(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "trials.jsonl"
    records = write_log(path, 3)
    lines = path.read_text().splitlines(keepends=True)
    assert json.loads(lines[0]) == {"format": "edgevision-trial-log", "version": 1, "config": CONFIG}
    assert lines[1:] == [r.to_line() for r in records]
    assert [json.loads(line)["status"] for line in lines[1:]] == ["ok", "failed", "timeout"]
    contents = read_trial_log(path)
    assert contents.config == CONFIG
    assert contents.records == records


def test_each_append_is_fsynced_after_its_line_is_written(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "trials.jsonl"
    log = TrialLog.open(path, CONFIG)
    synced_sizes = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        trial_log.os, "fsync", lambda fd: synced_sizes.append(os.fstat(fd).st_size) or real_fsync(fd)
    )
    header_size = path.stat().st_size
    log.append(record(0))
    log.append(record(1))
    log.close()
    assert synced_sizes == [header_size + len(record(0).to_line()), path.stat().st_size]


def test_resume_continues_the_log_and_may_raise_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    records = write_log(path, 2)
    with TrialLog.open(path, {**CONFIG, "budget": 50, "workers": 4}) as log:
        assert log.records == records
        assert log.config == CONFIG  # the header is the first search's
        log.append(record(2))
    assert read_trial_log(path).records == [*records, record(2)]


@pytest.mark.parametrize("key", ["space", "algo", "seed", "objective"])
def test_resume_refuses_another_search_naming_the_key(tmp_path: Path, key: str) -> None:
    path = tmp_path / "trials.jsonl"
    write_log(path, 1)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=f"its {key} is .*this search's is 'other'") as caught:
        TrialLog.open(path, {**CONFIG, key: "other"})
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before


def test_resume_refuses_a_key_the_new_config_adds(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    write_log(path, 1)
    with pytest.raises(ConfigError, match="its population is None, this search's is 100"):
        TrialLog.open(path, {**CONFIG, "population": 100})


def test_a_cut_short_last_line_is_dropped_with_a_warning_and_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    records = write_log(path, 3)
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(record(3).to_line().encode()[:40])  # killed mid-write: no newline
    with pytest.warns(EdgeVisionWarning, match="dropped its cut-short last line 5"):
        assert read_trial_log(path).records == records
    with pytest.warns(EdgeVisionWarning), TrialLog.open(path, CONFIG) as log:
        assert path.read_bytes() == whole
        log.append(record(3))
    assert read_trial_log(path).records == [*records, record(3)]


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    records = write_log(path, 2)
    path.write_bytes(path.read_bytes()[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with TrialLog.open(path, CONFIG) as log:
            log.append(record(2))
    assert read_trial_log(path).records == [*records, record(2)]


@pytest.mark.parametrize(
    "bad_line",
    [
        b"{not json",
        json.dumps({**json.loads(record(1).to_line()), "status": "lost"}).encode(),
        json.dumps({**json.loads(record(1).to_line()), "reward": 0.3, "status": "failed"}).encode(),
        record(2).to_line().encode().strip(),  # out of order: index 2 as the second record
    ],
    ids=["not-json", "bad-status", "failed-with-reward", "wrong-index"],
)
def test_a_corrupt_line_before_the_last_names_its_number(tmp_path: Path, bad_line: bytes) -> None:
    path = tmp_path / "trials.jsonl"
    write_log(path, 3)
    lines = path.read_bytes().split(b"\n")
    lines[2] = bad_line
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(InputFileError, match="line 3 is not a trial record") as caught:
        read_trial_log(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputFileError, match="line 3"):
        TrialLog.open(path, CONFIG)


def test_a_file_that_is_not_a_trial_log_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    with pytest.raises(InputFileError, match="is not a trial log"):
        TrialLog.open(path, CONFIG)
    assert path.read_text() == "my notes\n"
    path.write_text(json.dumps({"format": "edgevision-trial-log", "version": 99, "config": {}}) + "\n")
    with pytest.raises(InputFileError, match="format version 99"):
        read_trial_log(path)


def test_append_refuses_an_index_out_of_place(tmp_path: Path) -> None:
    with TrialLog.open(tmp_path / "trials.jsonl", CONFIG) as log:
        with pytest.raises(ConfigError, match="trial 1 appended as record 0"):
            log.append(record(1))


def test_a_config_that_is_not_plain_json_is_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    with pytest.raises(ConfigError, match="not plain JSON"):
        TrialLog.open(path, {**CONFIG, "budget": float("nan")})
    assert not path.exists()
