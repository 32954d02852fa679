"""``edgevision search``, ``search-report`` and ``search-train``: every bad input is one line,
exit 2, checked before any patch set is built or Ray starts, and nothing is written."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from edgevision.layers.nas_ops import Genotype
from edgevision.models.nasnet import NASNET_A


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--space", "darts"], ["unknown search space 'darts'", "nasnet, amoeba"]),
        (["--algo", "bayes"], ["unknown search algorithm 'bayes'", "evolution"]),
        (["--budget", "0"], ["--budget"]),
        (["--workers", "0"], ["--workers"]),
        (["--latency-target", "nan"], ["--latency-target"]),
        (["--latency-target", "-3"], ["--latency-target"]),
        (["--population", "1"], ["population"]),
        (["--trial-timeout", "inf"], ["--trial-timeout"]),
    ],
)
def test_bad_options_are_refused_before_any_work(
    run_cli, assert_one_line_error, tmp_path: Path, args: list[str], words: list[str]
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    code, _, err = run_cli("search", *args, "--out", str(out), "--cache", str(cache))
    assert_one_line_error(code, err, *words)
    assert not out.exists() and not cache.exists()


def test_an_unreachable_ray_address_is_refused(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    out, cache = tmp_path / "run", tmp_path / "cache"
    code, _, err = run_cli("search", "--address", address, "--out", str(out), "--cache", str(cache))
    assert_one_line_error(code, err, "cannot reach the Ray cluster", address)
    assert not out.exists() and not cache.exists()


def write_genotype(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda g: g["normal"]["blocks"][0]["ops"].__setitem__(0, "conv_9x9"), ["unknown ops", "conv_9x9"]),
        (lambda g: g["reduction"]["blocks"][2].pop("inputs"), ["reduction", "inputs"]),
        (lambda g: g["normal"]["blocks"][1].__setitem__("inputs", [0, 9]), ["normal", "block 1"]),
        (lambda g: g.pop("normal"), ["normal"]),
    ],
)
def test_search_train_refuses_bad_genotype_files(
    run_cli, assert_one_line_error, tmp_path: Path, edit, words: list[str]
) -> None:
    data = NASNET_A.to_dict()
    edit(data)
    path = write_genotype(tmp_path / "g.json", data)
    out = tmp_path / "trained"
    code, _, err = run_cli("search-train", str(path), "--out", str(out))
    assert_one_line_error(code, err, str(path), *words)
    assert not out.exists()


def test_search_train_refuses_a_file_that_is_not_json(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("{normal: ")
    code, _, err = run_cli("search-train", str(path), "--out", str(tmp_path / "trained"))
    assert_one_line_error(code, err, str(path))


def test_search_report_refuses_a_folder_without_a_log(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    code, _, err = run_cli("search-report", str(tmp_path / "run"), "--out", str(tmp_path / "c.png"))
    assert_one_line_error(code, err, "no trials.jsonl")
    assert not (tmp_path / "c.png").exists()


def test_published_genotype_still_parses() -> None:
    # The fixtures above edit this dict; it must be a valid genotype before the edit.
    assert Genotype.from_dict(NASNET_A.to_dict()) == NASNET_A
