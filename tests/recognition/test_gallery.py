"""The face gallery: its SQLite file, search against an independent float64 brute force, refusals,
and transactions that leave the file as it was when an add fails or its process is killed."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import edgevision
from edgevision.errors import ConfigError, GalleryError, MissingDependencyError, ShapeError
from edgevision.recognition.gallery import SCHEMA_VERSION, Gallery, Match

DIM = 8


@pytest.fixture()
def images(tmp_path: Path) -> list[Path]:
    """Ten small distinct files standing in for the images the embeddings came from."""
    paths = []
    for i in range(10):
        path = tmp_path / f"face{i}.jpg"
        path.write_bytes(f"image {i}".encode())
        paths.append(path)
    return paths


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def brute_force(people: dict[str, np.ndarray], query: np.ndarray, top: int) -> list[tuple[str, float]]:
    """Each name's maximum cosine over its embeddings, in float64, best ``top`` first."""
    best = {name: max(cosine(row, query) for row in rows) for name, rows in people.items()}
    return sorted(best.items(), key=lambda item: -item[1])[:top]


def test_round_trip_keeps_names_sources_and_the_exact_cosine(tmp_path, images):
    rng = np.random.default_rng(0)
    ann, bob = rng.normal(size=(3, DIM)) * 5, rng.normal(size=(2, DIM))  # not unit: stored unit
    path = tmp_path / "g.sqlite"
    with Gallery.open(path, "net-a", DIM, create=True) as gallery:
        assert gallery.add("Ann", ann, images[:3]) == 3
        assert gallery.add("  Bob ", bob, images[3:5]) == 2  # the name is stripped
    with Gallery.open(path, "net-a", DIM) as gallery:
        assert (len(gallery), gallery.names(), gallery.counts()) == (5, ["Ann", "Bob"], {"Ann": 3, "Bob": 2})
        query = ann[1] + rng.normal(size=DIM) * 0.1
        found = gallery.search(query, top=5)
    assert [m.name for m in found] == ["Ann", "Bob"]  # fewer people than top: all of them
    expected_ann = [cosine(row, query) for row in ann]
    assert found[0].similarity == pytest.approx(max(expected_ann), abs=1e-6)
    assert found[0].source == str(images[int(np.argmax(expected_ann))].resolve())
    assert found[1].similarity == pytest.approx(max(cosine(row, query) for row in bob), abs=1e-6)
    name, similarity, source = found[0]  # a Match unpacks as (name, similarity, source)
    assert isinstance(found[0], Match) and name == "Ann" and -1 <= similarity <= 1


def test_the_file_holds_the_documented_schema(tmp_path, images):
    path = tmp_path / "g.sqlite"
    embedding = np.arange(1, DIM + 1, dtype=np.float64)
    with Gallery.open(path, "net-a", DIM, create=True) as gallery:
        gallery.add("Ann", embedding[None], images[:1])
    with sqlite3.connect(path) as raw:
        meta = dict(raw.execute("SELECT key, value FROM meta"))
        name, blob, source, sha256, added = raw.execute(
            "SELECT name, embedding, source, sha256, added FROM entries"
        ).fetchone()
        journal_mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert (meta["model_name"], meta["embedding_size"]) == ("net-a", str(DIM))
    assert meta["created"].endswith("+00:00") and added.endswith("+00:00")
    stored = np.frombuffer(blob, dtype="<f4")
    np.testing.assert_allclose(stored, embedding / np.linalg.norm(embedding), rtol=1e-6)
    assert (name, source) == ("Ann", str(images[0].resolve()))
    assert sha256 == hashlib.sha256(images[0].read_bytes()).hexdigest()
    assert journal_mode == "delete"  # the rollback journal: one file at rest, no -wal beside it


@pytest.fixture(scope="module")
def people_and_gallery(tmp_path_factory) -> Iterator[tuple[dict[str, np.ndarray], Gallery]]:
    """150 people with 1 to 39 random 128-d embeddings each (about 3,000 entries); searched only."""
    folder = tmp_path_factory.mktemp("big")
    source = folder / "face.jpg"
    source.write_bytes(b"an image")
    rng = np.random.default_rng(1)
    people = {f"p{i:03d}": rng.normal(size=(int(rng.integers(1, 40)), 128)) for i in range(150)}
    gallery = Gallery.open(folder / "big.sqlite", "net", 128, create=True)
    for name, rows in people.items():
        gallery.add(name, rows, [source] * len(rows))
    yield people, gallery
    gallery.close()


@pytest.mark.parametrize("method", ["exact", "faiss"])
def test_search_equals_a_float64_brute_force_of_the_best_entry_per_name(people_and_gallery, method):
    if method == "faiss":
        pytest.importorskip("faiss", reason="faiss-cpu is an optional extra")
    people, gallery = people_and_gallery
    rng = np.random.default_rng(2)
    for query in rng.normal(size=(10, 128)):
        found = gallery.search(query, top=7, method=method)
        expected = brute_force(people, query, 7)
        assert [m.name for m in found] == [name for name, _ in expected]
        np.testing.assert_allclose([m.similarity for m in found], [s for _, s in expected], atol=1e-5)


def test_faiss_and_exact_search_give_the_same_top_k(people_and_gallery):
    pytest.importorskip("faiss", reason="faiss-cpu is an optional extra")
    _, gallery = people_and_gallery
    for query in np.random.default_rng(3).normal(size=(20, 128)):
        assert gallery.search(query, top=10, method="faiss") == gallery.search(query, top=10, method="exact")


def test_without_faiss_the_exact_search_works_and_faiss_is_one_error(tmp_path, images, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    with Gallery.open(tmp_path / "g.sqlite", "net", DIM, create=True) as gallery:
        gallery.add("Ann", np.eye(DIM)[:2], images[:2])
        gallery.add("Bob", np.eye(DIM)[2:3], images[2:3])
        assert gallery.search(np.eye(DIM)[2] + 0.5 * np.eye(DIM)[0]) == [
            Match("Bob", pytest.approx(2 / np.sqrt(5)), str(images[2].resolve())),
            Match("Ann", pytest.approx(1 / np.sqrt(5)), str(images[0].resolve())),
        ]
        with pytest.raises(
            MissingDependencyError, match=r"needs faiss-cpu: pip install 'edgevision\[gallery\]'"
        ):
            gallery.search(np.ones(DIM), method="faiss")


def test_a_search_sees_what_another_connection_committed(tmp_path, images):
    path = tmp_path / "g.sqlite"
    first = Gallery.open(path, "net", DIM, create=True)
    first.add("Ann", np.eye(DIM)[:1], images[:1])
    assert [m.name for m in first.search(np.eye(DIM)[1])] == ["Ann"]  # entries now held in memory
    with Gallery.open(path, "net", DIM) as second:
        second.add("Bob", np.eye(DIM)[1:2], images[1:2])
    assert first.search(np.eye(DIM)[1])[0] == ("Bob", 1.0, str(images[1].resolve()))
    first.close()


def test_remove_deletes_every_entry_of_a_name_and_nothing_else(tmp_path, images):
    path = tmp_path / "g.sqlite"
    with Gallery.open(path, "net", DIM, create=True) as gallery:
        gallery.add("Ann", np.eye(DIM)[:3], images[:3])
        gallery.add("Bob", np.eye(DIM)[3:4], images[3:4])
        assert gallery.remove("Ann") == 3
        assert [m.name for m in gallery.search(np.eye(DIM)[0], top=5)] == ["Bob"]
    with Gallery.open(path) as gallery:  # no model given: any gallery opens, to list or remove
        assert gallery.counts() == {"Bob": 1}
        with pytest.raises(GalleryError) as error:
            gallery.remove("Zed")
        assert str(error.value) == f"no one named 'Zed' in gallery {path}; names: Bob"
        assert gallery.counts() == {"Bob": 1}


def test_a_gallery_of_another_model_or_size_is_refused(tmp_path, images):
    path = tmp_path / "g.sqlite"
    Gallery.open(path, "mobilefacenet", DIM, create=True).close()
    for model, size in [("dlib-resnet", DIM), ("mobilefacenet", DIM * 2)]:
        for create in (False, True):
            with pytest.raises(GalleryError) as error:
                Gallery.open(path, model, size, create=create)
            message = str(error.value)
            assert "\n" not in message and "'mobilefacenet'" in message and f"{model!r}" in message
            assert f"({DIM}-d)" in message and f"({size}-d)" in message


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_that_are_not_galleries_are_refused_and_left_alone(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, this is not a database at all, just some words " * 20)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE photos (id INTEGER)")
    raw.close()
    for path, reason in [
        (text, "file is not a database"),
        (other, "a SQLite file without the gallery's tables"),
    ]:
        before = file_digest(path)
        for create in (False, True):
            with pytest.raises(GalleryError) as error:
                Gallery.open(path, "net", DIM, create=create)
            assert str(error.value) == f"{path} is not an edgevision gallery ({reason})"
        assert file_digest(path) == before
    with pytest.raises(GalleryError, match="is a folder"):
        Gallery.open(tmp_path, "net", DIM, create=True)
    with pytest.raises(GalleryError, match="no gallery at"):
        Gallery.open(tmp_path / "missing.sqlite", "net", DIM)
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_gallery_of_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "g.sqlite"
    Gallery.open(path, "net", DIM, create=True).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.close()
    with pytest.raises(GalleryError, match="schema version 2; this edgevision reads version 1"):
        Gallery.open(path)


@pytest.mark.parametrize(
    ("row", "error", "words"),
    [
        (np.full(DIM, np.nan), ConfigError, "row 1 has a NaN or inf"),
        (np.full(DIM, np.inf), ConfigError, "row 1 has a NaN or inf"),
        (np.zeros(DIM), ConfigError, "row 1 is all zeros"),
        (np.ones(DIM + 1), ShapeError, f"must be (N, {DIM})"),
    ],
)
def test_bad_embeddings_are_refused_and_nothing_is_added(tmp_path, images, row, error, words):
    with Gallery.open(tmp_path / "g.sqlite", "net", DIM, create=True) as gallery:
        gallery.add("Ann", np.eye(DIM)[:1], images[:1])
        rows = [np.eye(DIM)[1], row] if row.shape == (DIM,) else np.ones((2, DIM + 1))
        with pytest.raises(error) as raised:
            gallery.add("Bob", np.asarray(rows), images[1:3])
        assert words in str(raised.value)
        assert gallery.counts() == {"Ann": 1}
        if row.shape == (DIM,):
            with pytest.raises(error, match="the query embedding"):
                gallery.search(row)


def test_bad_names_sources_and_options_are_refused(tmp_path, images):
    with Gallery.open(tmp_path / "g.sqlite", "net", DIM, create=True) as gallery:
        for name in ["", "   ", "two\nlines", "x" * 201]:
            with pytest.raises(ConfigError, match="a name must be"):
                gallery.add(name, np.eye(DIM)[:1], images[:1])
        with pytest.raises(ShapeError, match="2 embeddings but 1 sources"):
            gallery.add("Ann", np.eye(DIM)[:2], images[:1])
        with pytest.raises(edgevision.errors.InputFileError, match="missing.jpg"):
            gallery.add("Ann", np.eye(DIM)[:1], [tmp_path / "missing.jpg"])
        for top in (0, -1, 1.5, True):
            with pytest.raises(ConfigError, match="top must be a positive integer"):
                gallery.search(np.ones(DIM), top=top)
        with pytest.raises(ConfigError, match="search method"):
            gallery.search(np.ones(DIM), method="hnsw")
        assert len(gallery) == 0


def test_an_add_that_fails_midway_leaves_the_previous_content(tmp_path, images):
    path = tmp_path / "g.sqlite"
    with Gallery.open(path, "net", DIM, create=True) as gallery:
        gallery.add("Ann", np.eye(DIM)[:2], images[:2])
        # A trigger in the file fails the 600th row of the next add, after 599 rows were inserted
        # in its transaction.
        with sqlite3.connect(path) as raw:
            raw.execute(
                "CREATE TRIGGER fail AFTER INSERT ON entries WHEN (SELECT COUNT(*) FROM entries) > 601 "
                "BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END"
            )
        raw.close()
        with pytest.raises(GalleryError, match="the disk is on fire"):
            gallery.add("Bob", np.ones((1000, DIM)), [images[2]] * 1000)
        assert gallery.counts() == {"Ann": 2}
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT name, COUNT(*) FROM entries GROUP BY name").fetchall() == [("Ann", 2)]
    raw.close()


KILLED_ADD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from edgevision.recognition.gallery import Gallery

    gallery = Gallery.open(sys.argv[1], "net", 128)
    rows = np.random.default_rng(0).normal(size=(60_000, 128))
    gallery.add("Bob", rows, [sys.argv[2]] * len(rows))
    """
)


def test_a_process_killed_during_a_large_add_leaves_the_previous_content(tmp_path, images):
    path = tmp_path / "g.sqlite"
    with Gallery.open(path, "net", 128, create=True) as gallery:
        gallery.add("Ann", np.eye(128)[:3], images[:3])
        before = gallery.search(np.eye(128)[0], top=5)
    size_before = path.stat().st_size
    journal = Path(f"{path}-journal")
    env = {**os.environ, "PYTHONPATH": str(Path(edgevision.__file__).parents[1])}
    script = [sys.executable, "-c", KILLED_ADD, str(path), str(images[3])]
    child = subprocess.Popen(script, env=env, stderr=subprocess.PIPE)
    try:
        # Kill it once its commit is writing pages into the gallery file itself: from then on only
        # the journal can restore the file.
        deadline = time.monotonic() + 120
        while not (journal.exists() and path.stat().st_size > size_before):
            assert child.poll() is None, f"the add ended before it was killed: {child.stderr.read()}"
            assert time.monotonic() < deadline, "the add wrote nothing into the file in 120 s"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert journal.exists()  # a hot journal: the file was left mid-write
    with Gallery.open(path, "net", 128) as gallery:
        assert gallery.counts() == {"Ann": 3}
        assert gallery.search(np.eye(128)[0], top=5) == before
    assert not journal.exists()  # played back and deleted
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
