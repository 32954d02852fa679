"""The durable record of a search: one JSON line per finished trial, after a header line with the
search's configuration.

A search appends each trial and fsyncs it before it moves on, so a killed search loses at most the
trials still in flight, and a resumed one replays the log instead of re-running them. The file
is plain JSON lines so the plots, and a user with ``jq``, can read it while the search runs.

Example::

    {"format": "edgevision-trial-log", "version": 1, "config": {"space": "nasnet", "seed": 0, ...}}
    {"index": 0, "arch": {...}, "status": "ok", "metrics": {"accuracy": 0.81}, "reward": 0.81, ...}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgevision.data.io import atomic_write, check_output_file
from edgevision.errors import ConfigError, EdgeVisionWarning, InputFileError

FORMAT = "edgevision-trial-log"
VERSION = 1
STATUSES = ("ok", "failed", "timeout")
# Options that change how long or where a search runs, not what it searches: a resumed search may
# change them (a larger budget extends a finished search). Every other config key must match.
RESUMABLE_KEYS = frozenset({"budget", "workers", "address", "trial_timeout_s"})


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial.

    ``index`` is the record's position in the log (trials are logged in finishing order); ``arch``
    is the space's JSON form; ``seed`` the trial seed ``evaluate`` got; ``reward`` is ``None``
    unless ``status`` is ``"ok"``; ``error`` is one line, empty when ok; ``seconds`` is the wall
    time of the evaluation; ``finished`` an ISO 8601 UTC time.
    """

    index: int
    arch: Any
    seed: int
    status: str
    metrics: dict[str, float]
    reward: float | None
    error: str
    seconds: float
    finished: str

    def to_line(self) -> str:
        """The record as one strict JSON line (no NaN: non-finite numbers never reach a record)."""
        return json.dumps(dataclasses.asdict(self), allow_nan=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> TrialRecord:
        """The record a parsed line holds; ValueError naming the first bad field."""
        fields = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(fields):
            raise ValueError(f"expected the fields {', '.join(fields)}")
        record = cls(**data)
        checks = {
            "index": _is_int(record.index) and record.index >= 0,
            "seed": _is_int(record.seed),
            "status": record.status in STATUSES,
            "metrics": isinstance(record.metrics, dict)
            and all(isinstance(k, str) and is_finite_number(v) for k, v in record.metrics.items()),
            "reward": is_finite_number(record.reward) if record.status == "ok" else record.reward is None,
            "error": isinstance(record.error, str) and "\n" not in record.error,
            "seconds": is_finite_number(record.seconds) and record.seconds >= 0,
            "finished": isinstance(record.finished, str),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"bad {bad[0]}: {getattr(record, bad[0])!r}")
        return record


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the millisecond (``finished`` of a record)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool), neither NaN nor infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class LogContents:
    """What a trial log holds: the header's config, the complete records in order, and the byte
    length of the part that holds them (less than the file's when its last line was cut short)."""

    config: dict[str, Any]
    records: list[TrialRecord]
    valid_bytes: int


def read_trial_log(path: str | Path) -> LogContents:
    """Read a trial log, e.g. one a search is still writing.

    A last line without its newline that is not a whole record is the write a killed search did
    not finish: it is dropped with an :class:`EdgeVisionWarning`.

    Raises:
        InputFileError: the file is missing, has no header, or a line before the last is not a
            record (the message names the line number).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"cannot read trial log {path}: {error.strerror or error}") from None
    lines = raw.split(b"\n")  # the piece after the last newline is b"" when the file is whole
    header = _parse_header(path, lines[0])
    records = []
    valid_bytes = len(lines[0]) + 1
    for number, line in enumerate(lines[1:], start=2):
        last = number == len(lines)
        if last and not line:
            break
        try:
            record = TrialRecord.from_json(json.loads(line))
            if record.index != len(records):
                raise ValueError(f"index {record.index}, expected {len(records)}")
        except (UnicodeDecodeError, ValueError, TypeError) as error:
            if last:
                warnings.warn(
                    f"trial log {path}: dropped its cut-short last line {number} (a search killed "
                    "while writing it)",
                    EdgeVisionWarning,
                    stacklevel=2,
                )
                break
            raise InputFileError(f"trial log {path} line {number} is not a trial record: {error}") from None
        records.append(record)
        valid_bytes += len(line) + (0 if last else 1)
    return LogContents(header, records, valid_bytes)


def _parse_header(path: Path, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputFileError(f"{path} is not a trial log (line 1 is not its header)")
    if header.get("version") != VERSION:
        raise InputFileError(
            f"trial log {path} has format version {header.get('version')!r}; this edgevision reads {VERSION}"
        )
    if not isinstance(header.get("config"), dict):
        raise InputFileError(f"trial log {path}: its header has no config")
    return header["config"]


def _plain_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as it reads back from JSON (tuples become lists), so a logged config compares
    equal to the one that wrote it."""
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise ConfigError(f"a search config must be a dict with string keys, got {config!r}")
    try:
        return json.loads(json.dumps(config, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the search config is not plain JSON: {error}") from None


def check_same_search(
    path: Path, logged: dict[str, Any], config: dict[str, Any], unchecked: frozenset[str] = frozenset()
) -> None:
    """ConfigError naming the first key (beyond :data:`RESUMABLE_KEYS` and ``unchecked``) on which
    the ``logged`` config of the log at ``path`` and this search's ``config`` differ."""
    for key in sorted((logged.keys() | config.keys()) - RESUMABLE_KEYS - unchecked):
        if logged.get(key) != config.get(key):
            raise ConfigError(
                f"trial log {path} is of another search: its {key} is {logged.get(key)!r}, this "
                f"search's is {config.get(key)!r} (give a new log file to start afresh)"
            )


class TrialLog:
    """An open trial log that :meth:`append` adds durable records to.

    Open it with :meth:`open`, which creates the file or resumes it; ``records`` are the trials it
    held when opened, then every appended one.
    """

    def __init__(self, path: Path, config: dict[str, Any], records: list[TrialRecord]) -> None:
        self.path = path
        self.config = config
        self.records = records
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    @classmethod
    def open(cls, path: str | Path, config: dict[str, Any]) -> TrialLog:
        """Create the log at ``path`` with ``config`` as its header, or resume the one there.

        Resuming checks that the logged config is this one except for :data:`RESUMABLE_KEYS`,
        and cuts off a last line a killed search left unfinished.

        Raises:
            ConfigError: the log is of a search with another config (the message names the key),
                or ``config`` is not plain JSON.
            InputFileError: ``path`` cannot be written, or is not a trial log.
        """
        path = check_output_file(path, "trial log")
        config = _plain_config(config)
        if not path.exists():
            header = {"format": FORMAT, "version": VERSION, "config": config}
            with atomic_write(path, "w") as handle:
                handle.write(json.dumps(header) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            _fsync_dir(path.parent)
            return cls(path, config, [])
        contents = read_trial_log(path)
        check_same_search(path, contents.config, config)
        if contents.valid_bytes < path.stat().st_size:
            os.truncate(path, contents.valid_bytes)
        log = cls(path, contents.config, contents.records)
        if not path.read_bytes().endswith(b"\n"):
            log._write(b"\n")  # a whole last line that lost only its newline
        return log

    def append(self, record: TrialRecord) -> None:
        """Write ``record`` as the next line and fsync it; ConfigError when its index is not the
        next one."""
        if record.index != len(self.records):
            raise ConfigError(f"trial {record.index} appended as record {len(self.records)} of {self.path}")
        self._write(record.to_line().encode())
        self.records.append(record)

    def _write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self._fd, data) :]
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> TrialLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(folder: Path) -> None:
    """Make a new file's name durable (a rename is in the folder, not the file)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
