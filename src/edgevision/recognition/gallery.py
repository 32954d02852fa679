"""A face gallery kept in one SQLite file: people's names, their unit embeddings, the model that
made them and the image each came from; searched by cosine similarity, best match per person.

The file (schema version :data:`SCHEMA_VERSION`)::

    meta     key TEXT PRIMARY KEY, value TEXT: schema_version, model_name, embedding_size,
             created (ISO 8601, UTC)
    entries  id INTEGER PRIMARY KEY, name TEXT, embedding BLOB (embedding_size little-endian
             float32, unit norm), source TEXT (the image's absolute path), sha256 TEXT (of the
             image file's bytes), added TEXT (ISO 8601, UTC)

Every change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT`` inside ``with connection:``,
which rolls back on any exception), so a failed or killed command leaves the gallery as it was.
The journal is SQLite's rollback journal (``journal_mode=DELETE``, ``synchronous=FULL``), not WAL:
a gallery is one file a user copies, moves or keeps on a network share, and in WAL mode committed
entries live in a ``-wal`` file beside it until a checkpoint (copying the main file alone loses
them) and readers need shared memory that network file systems do not give. WAL's gain, readers
running while one process writes, is not a need of a command-line gallery. A process killed in a
write leaves a hot journal, which the next connection plays back before reading anything.

Search: the cosine similarity of unit vectors is their inner product. A person's score is the
**maximum** over their entries (the similarity of their closest image, whose source is reported),
not the similarity to their mean embedding: people enrolled from varied images (frontal and
profile, with and without glasses) form separate clusters whose mean may lie near none of them;
the maximum keeps each, and it names the image that matched.

The search is exact (every entry scored), with numpy by default at every size: measured on one
thread with single queries (benchmarks/gallery_search.py, docs/benchmarks.md), faiss-cpu's exact
``IndexFlatIP`` was no faster at any size from 100 to 1,000,000 entries (0.9 to 1.2 times numpy's
time: both are one pass over the matrix, bound by memory), and it costs an index build (3.5 s at
1e6) per loaded gallery. An approximate index was not needed either: one ``gallery search``
spends far longer reading the entries from SQLite (0.6 s at 1e5) than searching them (12 ms).
``search(method="faiss")`` gives the same answers through faiss when it is installed (an
optional extra).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from edgevision.errors import (
    ConfigError,
    GalleryError,
    InputFileError,
    MissingDependencyError,
    ShapeError,
)

SCHEMA_VERSION = 1
MAX_NAME_LENGTH = 200
SEARCH_METHODS = ("exact", "faiss")

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entries (id INTEGER PRIMARY KEY, name TEXT NOT NULL, embedding BLOB NOT NULL, "
    "source TEXT NOT NULL, sha256 TEXT NOT NULL, added TEXT NOT NULL)",
    "CREATE INDEX entries_by_name ON entries (name)",
)
_FLOAT = np.dtype("<f4")  # the stored embeddings' type, whatever this machine's byte order


class Match(NamedTuple):
    """A person found by :meth:`Gallery.search`, through their entry closest to the query."""

    name: str
    similarity: float  # cosine similarity of the query and that entry, in [-1, 1]
    source: str  # the image that entry was made from


def check_name(name: str) -> str:
    """``name`` without surrounding spaces, when it can name a person: 1 to
    :data:`MAX_NAME_LENGTH` printable characters (one line; letters of any script)."""
    stripped = name.strip() if isinstance(name, str) else ""
    if not stripped or len(stripped) > MAX_NAME_LENGTH or not stripped.isprintable():
        raise ConfigError(
            f"a name must be 1 to {MAX_NAME_LENGTH} printable characters on one line, got {name!r}"
        )
    return stripped


def unit_rows(embeddings: ArrayLike, size: int, what: str) -> np.ndarray:
    """``(N, size)`` real, finite, non-zero ``embeddings`` scaled to unit norm, as float32.

    Raises:
        ShapeError: not ``(N, size)`` with ``N >= 1``.
        ConfigError: not real numbers, or a row has a NaN or inf, or is all zeros.
    """
    array = np.asarray(embeddings)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] != size:
        raise ShapeError(f"{what} must be (N, {size}) with N >= 1, got shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise ConfigError(f"{what} must be real numbers, got dtype {array.dtype}")
    values = array.astype(np.float64)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise ConfigError(f"{what}: row {int(np.argmin(finite))} has a NaN or inf")
    norms = np.linalg.norm(values, axis=1)
    if not norms.all():
        raise ConfigError(f"{what}: row {int(np.argmin(norms))} is all zeros (no direction)")
    return (values / norms[:, None]).astype(np.float32)


def exact_candidates(matrix: np.ndarray, query: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` rows of ``matrix`` ``(N, D)`` with the largest inner product with
    ``query`` ``(D,)``, in no particular order (numpy, exact)."""
    scores = matrix @ query
    if count >= len(scores):
        return np.arange(len(scores))
    return np.argpartition(scores, len(scores) - count)[len(scores) - count :]


def faiss_index(matrix: np.ndarray) -> Any:
    """A faiss ``IndexFlatIP`` (exact inner product) over the rows of ``matrix`` ``(N, D)``.

    Raises:
        MissingDependencyError: faiss-cpu is not installed.
    """
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError(
            "search method 'faiss' needs faiss-cpu: pip install 'edgevision[gallery]'"
        ) from None

    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(np.ascontiguousarray(matrix, dtype=np.float32))
    return index


def faiss_candidates(index: Any, query: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` (at most the index's size) rows of a :func:`faiss_index` with the
    largest inner product with ``query`` ``(D,)``."""
    _, ids = index.search(np.ascontiguousarray(query[None], dtype=np.float32), count)
    return ids[0]


def best_per_name(
    candidates: np.ndarray, matrix: np.ndarray, query: np.ndarray, names: Sequence[str], top: int
) -> list[tuple[int, float]]:
    """``(entry index, similarity)`` of the best entry of each of the ``top`` best names among
    ``candidates``, best first. Each candidate is scored here with the same float32 inner product,
    whichever search found it, so the exact and faiss paths report equal numbers."""
    scores = matrix[candidates] @ query
    order = np.argsort(-scores, kind="stable")
    best: dict[str, tuple[int, float]] = {}
    for position in order:
        name = names[candidates[position]]
        if name not in best:  # the first time a name appears is its best entry
            best[name] = (int(candidates[position]), float(scores[position]))
            if len(best) == top:
                break
    return list(best.values())


@dataclass(frozen=True)
class _Entries:
    """Every entry of a gallery in memory, as searched."""

    names: list[str]
    sources: list[str]
    matrix: np.ndarray  # (N, D) float32 unit rows
    largest_group: int  # the most entries any one name has
    version: int  # the file's data_version when read: another connection's commit changes it


class Gallery:
    """A face gallery in a SQLite file; make one with :meth:`open` (see the module's docstring
    for the file, its transactions and the search). Close it, or use it as a context manager."""

    def __init__(
        self, connection: sqlite3.Connection, path: Path, model_name: str, embedding_size: int, created: str
    ) -> None:
        self._connection = connection
        self.path = path
        self.model_name = model_name
        self.embedding_size = embedding_size
        self.created = created
        self._entries: _Entries | None = None
        self._index: Any = None  # faiss index over self._entries, built on first use

    @classmethod
    def open(
        cls,
        path: str | Path,
        model_name: str | None = None,
        embedding_size: int | None = None,
        *,
        create: bool = False,
    ) -> Gallery:
        """Open the gallery file ``path``; ``create``: make it (empty) if it does not exist.

        With ``model_name`` and ``embedding_size`` the gallery must hold that model's embeddings
        (both are needed to create one); without them any gallery opens (to list or remove).

        Raises:
            GalleryError: no such file (and not ``create``), a folder, a file that is not a SQLite
                gallery (or of a newer schema), or a gallery made by another model.
            InputFileError: ``create`` and the file cannot be written there.
        """
        path = Path(path)
        if create and (model_name is None or embedding_size is None):
            raise ConfigError("creating a gallery needs the model's name and embedding size")
        if path.is_dir():
            raise GalleryError(f"gallery {path} is a folder; give a file name")
        if not path.exists():
            if not create:
                raise GalleryError(f"no gallery at {path} (`edgevision gallery add` makes one)")
            from edgevision.data.io import check_output_file

            check_output_file(path, "gallery")
        with _database_errors(path):
            # Autocommit mode: transactions are explicit (BEGIN), DDL included, which Python's
            # implicit transactions would commit statement by statement.
            uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
            connection = sqlite3.connect(uri, uri=True, isolation_level=None)
            try:
                connection.execute("PRAGMA synchronous = FULL")  # each commit reaches the disk
                meta = _read_meta(connection, path, (model_name, embedding_size) if create else None)
            except BaseException:
                connection.close()
                raise
        gallery = cls(connection, path, **meta)
        if model_name is not None or embedding_size is not None:
            try:
                gallery.check_model(model_name, embedding_size)
            except GalleryError:
                gallery.close()
                raise
        return gallery

    def check_model(self, model_name: str | None, embedding_size: int | None) -> None:
        """Raise :class:`GalleryError` unless this gallery holds ``model_name``'s embeddings of
        ``embedding_size`` floats."""
        if (model_name, embedding_size) != (self.model_name, self.embedding_size):
            raise GalleryError(
                f"gallery {self.path} holds embeddings of model {self.model_name!r} "
                f"({self.embedding_size}-d), not of {model_name!r} ({embedding_size}-d): "
                "use another gallery file"
            )

    def add(self, name: str, embeddings: ArrayLike, sources: Sequence[str | Path]) -> int:
        """Add ``embeddings`` ``(N, embedding_size)`` of the person ``name``, made from the image
        files ``sources`` (``N`` of them; their paths and sha256 are stored), in one transaction.
        The embeddings are stored at unit norm. Returns ``N``.

        Raises:
            ConfigError: a bad name, or an embedding with a NaN or inf, or all zeros.
            ShapeError: embeddings not ``(N, embedding_size)``, or not one source per embedding.
            InputFileError: a source file cannot be read.
        """
        name = check_name(name)
        rows = unit_rows(embeddings, self.embedding_size, "embeddings").astype(_FLOAT)
        paths = [Path(source) for source in sources]
        if len(paths) != len(rows):
            raise ShapeError(f"{len(rows)} embeddings but {len(paths)} sources: give one source each")
        files = {path: (str(path.resolve()), _file_sha256(path)) for path in set(paths)}
        added = datetime.now(UTC).isoformat(timespec="seconds")
        records = [(name, row.tobytes(), *files[path], added) for row, path in zip(rows, paths)]
        with self._write():
            self._connection.executemany(
                "INSERT INTO entries (name, embedding, source, sha256, added) VALUES (?, ?, ?, ?, ?)",
                records,
            )
        return len(records)

    def remove(self, name: str) -> int:
        """Remove every entry of ``name``, in one transaction; returns how many there were.

        Raises:
            GalleryError: no one of that name is in the gallery (nothing changes).
        """
        name = check_name(name)
        with self._write():
            removed = self._connection.execute("DELETE FROM entries WHERE name = ?", (name,)).rowcount
            if not removed:
                known = self.names()
                shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
                raise GalleryError(
                    f"no one named {name!r} in gallery {self.path}; "
                    + (f"names: {shown}" if known else "it is empty")
                )
        return removed

    def names(self) -> list[str]:
        """The names in the gallery, sorted."""
        query = "SELECT DISTINCT name FROM entries ORDER BY name"
        with _database_errors(self.path):
            return [row[0] for row in self._connection.execute(query)]

    def counts(self) -> dict[str, int]:
        """Entries per name, sorted by name."""
        query = "SELECT name, COUNT(*) FROM entries GROUP BY name ORDER BY name"
        with _database_errors(self.path):
            return dict(self._connection.execute(query).fetchall())

    def __len__(self) -> int:
        """The number of entries (embeddings), every name's together."""
        with _database_errors(self.path):
            return self._connection.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def search(self, embedding: ArrayLike, top: int = 5, *, method: str = "exact") -> list[Match]:
        """The ``top`` people most similar to ``embedding`` ``(embedding_size,)``, best first: each
        with their closest entry's cosine similarity and source (see the module's docstring).
        Fewer when the gallery has fewer people; none when it is empty.

        ``method``: ``"exact"`` (numpy) or ``"faiss"`` (faiss ``IndexFlatIP``, exact too: the
        same answers, no faster; see the module's docstring).

        Raises:
            ShapeError / ConfigError: a query that is not ``(embedding_size,)``, or is not finite
                or all zeros; ``top`` below 1; an unknown ``method``.
            MissingDependencyError: ``method="faiss"`` without faiss-cpu installed.
        """
        if method not in SEARCH_METHODS:
            raise ConfigError(f"search method must be one of {', '.join(SEARCH_METHODS)}, got {method!r}")
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ConfigError(f"top must be a positive integer, got {top!r}")
        query = np.asarray(embedding)
        if query.ndim != 1:
            raise ShapeError(f"the query embedding must be ({self.embedding_size},), got shape {query.shape}")
        query = unit_rows(query[None], self.embedding_size, "the query embedding")[0]
        entries = self._current_entries()
        if not entries.names:
            return []
        # The best `top` names are among the best (top - 1) * largest_group + 1 entries: each name
        # ahead of the top-th one holds at most largest_group of the entries ahead of its best.
        count = min(len(entries.names), (top - 1) * entries.largest_group + 1)
        if method == "exact":
            candidates = exact_candidates(entries.matrix, query, count)
        else:
            if self._index is None:
                self._index = faiss_index(entries.matrix)
            candidates = faiss_candidates(self._index, query, count)
        best = best_per_name(candidates, entries.matrix, query, entries.names, top)
        return [Match(entries.names[i], similarity, entries.sources[i]) for i, similarity in best]

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction: committed at the end, rolled back on any exception. IMMEDIATE
        takes the write lock first, so two writers queue instead of failing to upgrade a lock."""
        with _database_errors(self.path), self._connection:
            self._connection.execute("BEGIN IMMEDIATE")
            yield
        self._entries = self._index = None

    def _current_entries(self) -> _Entries:
        """The entries in memory, read again when another connection has committed since."""
        with _database_errors(self.path):
            version = self._connection.execute("PRAGMA data_version").fetchone()[0]
            if self._entries is None or self._entries.version != version:
                self._entries = _read_entries(self._connection, self.path, self.embedding_size, version)
                self._index = None
        return self._entries


@contextmanager
def _database_errors(path: Path) -> Iterator[None]:
    """SQLite's errors as one-line :class:`GalleryError`\\ s naming the file."""
    try:
        yield
    except sqlite3.OperationalError as error:  # locked, unreadable, read-only, disk full
        raise GalleryError(f"cannot use gallery {path}: {error}") from None
    except sqlite3.DatabaseError as error:  # not a database, or a damaged one
        raise GalleryError(f"{path} is not an edgevision gallery ({error})") from None


def _read_meta(
    connection: sqlite3.Connection, path: Path, create: tuple[str | None, int | None] | None
) -> dict[str, Any]:
    """The gallery's model_name, embedding_size and created; ``create``: ``(model, size)`` of the
    schema written first into a database without tables (one transaction)."""
    with connection:
        connection.execute("BEGIN IMMEDIATE" if create else "BEGIN")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and create:
            for statement in _SCHEMA:
                connection.execute(statement)
            model_name, embedding_size = create
            values = {
                "schema_version": SCHEMA_VERSION,
                "model_name": model_name,
                "embedding_size": embedding_size,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            connection.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])
            tables = {"meta", "entries"}
        if not {"meta", "entries"} <= tables:
            what = "an empty database" if not tables else "a SQLite file without the gallery's tables"
            raise GalleryError(f"{path} is not an edgevision gallery ({what})")
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    try:
        version = int(meta["schema_version"])
        model_name, embedding_size, created = meta["model_name"], int(meta["embedding_size"]), meta["created"]
    except (KeyError, ValueError):
        raise GalleryError(f"{path} is not an edgevision gallery (its meta table is incomplete)") from None
    if version != SCHEMA_VERSION:
        raise GalleryError(
            f"gallery {path} has schema version {version}; this edgevision reads version {SCHEMA_VERSION}"
        )
    if embedding_size < 1:
        raise GalleryError(f"gallery {path} has a bad embedding size {embedding_size}")
    return {"model_name": model_name, "embedding_size": embedding_size, "created": created}


def _read_entries(connection: sqlite3.Connection, path: Path, size: int, version: int) -> _Entries:
    """Every entry, in one statement (one consistent read), as of ``version`` (the data_version
    read before it); damaged embeddings are refused."""
    rows = connection.execute("SELECT name, source, embedding FROM entries ORDER BY id").fetchall()
    names = [row[0] for row in rows]
    blobs = [row[2] for row in rows]
    if any(not isinstance(blob, bytes) or len(blob) != size * _FLOAT.itemsize for blob in blobs):
        raise GalleryError(f"gallery {path} has an embedding that is not {size} float32 values")
    matrix = np.frombuffer(b"".join(blobs), dtype=_FLOAT).reshape(len(rows), size).astype(np.float32)
    if not np.isfinite(matrix).all():
        raise GalleryError(f"gallery {path} has an embedding with a NaN or inf")
    largest = max(Counter(names).values(), default=0)
    return _Entries(names, [row[1] for row in rows], matrix, largest, version)


def _file_sha256(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from None
