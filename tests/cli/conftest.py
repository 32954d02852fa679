"""Running the ``edgevision`` command in-process, and the shape of its errors."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from edgevision.cli import main


@pytest.fixture()
def run_cli(monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*args)`` runs ``edgevision *args`` and returns ``(exit code, stdout, stderr)``."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["edgevision", *args])
        monkeypatch.setenv("COLUMNS", "120")  # rich draws tables to this width
        with pytest.raises(SystemExit) as exited:
            main()
        captured = capsys.readouterr()
        return exited.value.code, captured.out, captured.err

    return run


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    for word in words:
        assert word in lines[0]


@pytest.fixture()
def assert_one_line_error() -> Callable[..., None]:
    """``assert_one_line_error(code, stderr, *words)``: exit code 2 and one ``error:`` line on stderr
    holding every word."""
    return one_line_error
