"""Every command that writes checks its output path before the work starts: a file where a
folder is expected, a folder where a file is expected, or a folder it may not write into is one
line, exit 2, and nothing is run or written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture()
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("x")
    return path


@pytest.fixture()
def no_build(monkeypatch) -> None:
    """The builder fails the test if it is reached: the check must come before it."""
    import edgevision.deploy.builder as builder

    def refuse(*args, **kwargs):
        raise AssertionError("build_engine ran before the output path was checked")

    monkeypatch.setattr(builder, "build_engine", refuse)


def commands(astronaut_path: Path, out: Path) -> dict[str, list[str]]:
    """Each writing command with ``out`` as its output (a folder or a file, as the command wants)."""
    return {
        "detect": ["detect", str(astronaut_path), "--out", str(out)],
        "run": ["run", str(out.parent / "missing.plan"), str(astronaut_path), "--out", str(out)],
        "eval": ["eval", "widerface", "--data", str(out.parent / "missing"), "--out", str(out)],
        "stats": [
            "data",
            "stats",
            "openimages",
            "--data",
            str(out.parent / "missing"),
            "--out",
            f"{out}.png",
        ],
        "build": ["build", "faceboxes", "-o", str(out)],
    }


@pytest.mark.parametrize("command", ["detect", "run", "eval"])
def test_a_file_where_a_folder_is_expected(
    run_cli, assert_one_line_error, astronaut_path, afile, command
) -> None:
    code, stdout, err = run_cli(*commands(astronaut_path, afile)[command])
    assert_one_line_error(code, err, f"--out {afile} is a file, not a folder")
    code, stdout, err = run_cli(*commands(astronaut_path, afile / "sub")[command])
    assert_one_line_error(code, err, f"--out {afile / 'sub'} is inside {afile}, which is a file")
    assert stdout == "" and afile.read_text() == "x"


@pytest.mark.parametrize(("command", "option"), [("stats", "--out"), ("build", "-o/--output")])
def test_a_folder_where_a_file_is_expected(
    run_cli, assert_one_line_error, astronaut_path, tmp_path, no_build, command, option
) -> None:
    folder = tmp_path / "result"
    folder.mkdir()
    (tmp_path / "result.png").mkdir()  # data stats wants a chart file name ending in .png
    args = commands(astronaut_path, folder)[command]
    code, _, err = run_cli(*args)
    assert_one_line_error(code, err, option, "is a folder; give a file name")
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run_cli(*commands(astronaut_path, afile / "result")[command])
    assert_one_line_error(code, err, option, f"the folder {afile} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "result", "result.png"]
    assert not list(folder.iterdir())


def test_calibration_cache_that_cannot_be_written(run_cli, assert_one_line_error, afile, no_build) -> None:
    plan = afile.parent / "f.plan"
    code, _, err = run_cli("build", "faceboxes", "-o", str(plan), "--calib-cache", str(afile / "cache.json"))
    assert_one_line_error(code, err, "--calib-cache", f"the folder {afile} is a file")


@pytest.mark.parametrize("command", ["detect", "run", "eval", "stats", "build"])
def test_a_folder_without_write_permission(
    run_cli, assert_one_line_error, astronaut_path, tmp_path, monkeypatch, no_build, command
) -> None:
    # As root every folder is writable (tests/data/test_io.py runs a real read-only folder as a
    # user), so the kernel's answer is replaced for the output's parent folder only.
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and access(path, mode))
    code, stdout, err = run_cli(*commands(astronaut_path, locked / "out")[command])
    assert_one_line_error(code, err, f"cannot write into {locked} (permission denied)")
    assert stdout == "" and not list(locked.iterdir())
