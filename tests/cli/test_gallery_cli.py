"""``edgevision gallery add|search|list|remove`` with a stand-in recognizer (no model needed): the
round trip, the per-image skips of ``add``, and every refusal as one line, exit 2, the gallery
unchanged."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.errors import NoFaceError

RED, DARK_RED, GREEN, REDDISH = (0, 0, 200), (10, 20, 180), (0, 200, 0), (5, 15, 190)


class FakeRecognizer:
    """:class:`edgevision.recognition.recognizer.Recognizer`'s interface: embeds an image as its
    mean blue, green and red and a constant 40, at unit norm; an all-black image has no face;
    "same person" up to a cosine distance of 0.05 (``--model nocard``: no threshold)."""

    embedding_size = 4

    def __init__(self, model_name: str) -> None:
        self.model_name = self.model_id = model_name
        self.threshold = None if model_name == "nocard" else 0.05
        self.crops: list[bool] = []

    def embed(self, image: np.ndarray, *, crop: bool = False) -> np.ndarray:
        self.crops.append(crop)
        if not image.any():
            raise NoFaceError("no face found in the image")
        vector = np.append(image.reshape(-1, 3).mean(axis=0), 40.0)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


@pytest.fixture()
def recognizers(monkeypatch) -> list[FakeRecognizer]:
    """Every recognizer the commands load, in order (``--model NAME`` names it; default
    "fake-net"), through a patched ``load_recognizer``."""
    loaded: list[FakeRecognizer] = []

    def load_recognizer(name=None, weights=None, *, detector=None, device=None) -> FakeRecognizer:
        loaded.append(FakeRecognizer(name or "fake-net"))
        return loaded[-1]

    try:
        import edgevision.recognition.recognizer as module
    except ImportError:  # until the recognizer lands: a stand-in module with its entry point
        module = types.ModuleType("edgevision.recognition.recognizer")
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(module, "load_recognizer", load_recognizer, raising=False)
    return loaded


@pytest.fixture()
def image(tmp_path):
    """``image(name, bgr)``: a 16x16 PNG of one colour."""

    def write(name: str, bgr: tuple[int, int, int]) -> Path:
        path = tmp_path / name
        assert cv2.imwrite(str(path), np.full((16, 16, 3), bgr, np.uint8))
        return path

    return write


def cosine(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """The stand-in's embeddings' cosine, computed here independently, in float64."""
    u, v = np.array([*a, 40.0]), np.array([*b, 40.0])
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_add_list_search_remove(run_cli, recognizers, image, tmp_path):
    gallery = str(tmp_path / "g.sqlite")
    red, dark_red, green = image("red.png", RED), image("dark_red.png", DARK_RED), image("green.png", GREEN)
    code, out, _ = run_cli("gallery", "add", "Ann", str(red), str(dark_red), "--gallery", gallery)
    assert (code, out.strip()) == (0, f"{gallery}: added 2 image(s) of Ann (2 in all)")
    code, _, _ = run_cli("gallery", "add", "Bob", str(green), "--gallery", gallery, "--crop")
    assert code == 0 and recognizers[-1].crops == [True]
    code, out, _ = run_cli("gallery", "list", "--gallery", gallery, "--json")
    listed = json.loads(out)
    assert (code, listed["people"], listed["model"], listed["embedding_size"]) == (
        0,
        {"Ann": 2, "Bob": 1},
        "fake-net",
        4,
    )

    code, out, _ = run_cli(
        "gallery", "search", str(image("query.png", REDDISH)), "--gallery", gallery, "--json"
    )
    found = json.loads(out)
    matches = found["matches"]
    assert code == 0 and [m["name"] for m in matches] == ["Ann", "Bob"]
    assert found["threshold"] == 0.05 and [m["same"] for m in matches] == [True, False]
    closest = max([(cosine(REDDISH, RED), red), (cosine(REDDISH, DARK_RED), dark_red)])
    assert matches[0]["similarity"] == pytest.approx(closest[0], abs=2e-6)
    assert matches[0]["source"] == str(closest[1].resolve())
    assert matches[1]["similarity"] == pytest.approx(cosine(REDDISH, GREEN), abs=2e-6)
    assert recognizers[-1].crops == [False]

    code, out, _ = run_cli("gallery", "remove", "Ann", "--gallery", gallery)
    assert (code, out.strip()) == (0, f"{gallery}: removed Ann (2 image(s))")
    code, out, _ = run_cli("gallery", "list", "--gallery", gallery, "--json")
    assert json.loads(out)["people"] == {"Bob": 1}


def test_search_and_list_print_tables(run_cli, recognizers, image, tmp_path):
    gallery = str(tmp_path / "g.sqlite")
    run_cli("gallery", "add", "Ann", str(image("red.png", RED)), "--gallery", gallery)
    run_cli("gallery", "add", "Bob", str(image("green.png", GREEN)), "--gallery", gallery)
    code, out, _ = run_cli(
        "gallery", "search", str(image("q.png", REDDISH)), "--gallery", gallery, "--top", "1"
    )
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    assert code == 0 and "same (distance <= 0.05)" in out
    assert rows[0][:4] == ["1", "Ann", f"{cosine(REDDISH, RED):.3f}", "yes"]  # then the path, folded
    assert "".join(row[-1] for row in rows) == str(tmp_path / "red.png")
    code, out, _ = run_cli("gallery", "list", "--gallery", gallery)
    assert code == 0 and "2 people, 2 image(s); fake-net (4-d)" in out
    rows = [line.split("│")[1:3] for line in out.splitlines() if line.count("│") == 3]
    assert [(name.strip(), count.strip()) for name, count in rows] == [("Ann", "1"), ("Bob", "1")]


def test_without_a_threshold_search_gives_no_verdict(run_cli, recognizers, image, tmp_path):
    gallery = str(tmp_path / "g.sqlite")
    run_cli("gallery", "add", "Ann", str(image("red.png", RED)), "--gallery", gallery, "--model", "nocard")
    query = str(image("q.png", REDDISH))
    code, out, _ = run_cli("gallery", "search", query, "--gallery", gallery, "--model", "nocard", "--json")
    found = json.loads(out)
    assert code == 0 and found["threshold"] is None and "same" not in found["matches"][0]
    code, out, _ = run_cli("gallery", "search", query, "--gallery", gallery, "--model", "nocard")
    assert code == 0 and "Ann" in out and "same" not in out


def test_add_skips_images_without_a_face_warns_and_exits_2(run_cli, recognizers, image, tmp_path):
    gallery = tmp_path / "g.sqlite"
    black, red = image("black.png", (0, 0, 0)), image("red.png", RED)
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    code, out, err = run_cli(
        "gallery", "add", "Ann", str(black), str(red), str(notes), "--gallery", str(gallery)
    )
    assert code == 2 and "added 1 image(s) of Ann" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert f"skipped {black}: no face found" in warnings[0] and f"skipped {notes}" in warnings[1]
    assert "3 input(s), 1 added" in err
    code, out, _ = run_cli("gallery", "list", "--gallery", str(gallery), "--json")
    assert json.loads(out)["people"] == {"Ann": 1}


def test_an_add_with_no_face_at_all_makes_no_gallery(run_cli, recognizers, image, tmp_path):
    gallery = tmp_path / "g.sqlite"
    code, _, err = run_cli(
        "gallery", "add", "Ann", str(image("black.png", (0, 0, 0))), "--gallery", str(gallery)
    )
    assert code == 2 and "no face found" in err and "1 input(s), 0 added" in err
    assert not gallery.exists()


def test_search_for_an_image_without_a_face_is_one_error(
    run_cli, assert_one_line_error, recognizers, image, tmp_path
):
    gallery = str(tmp_path / "g.sqlite")
    run_cli("gallery", "add", "Ann", str(image("red.png", RED)), "--gallery", gallery)
    code, _, err = run_cli("gallery", "search", str(image("black.png", (0, 0, 0))), "--gallery", gallery)
    assert_one_line_error(code, err, "black.png: no face found")


def test_a_gallery_of_another_model_is_refused_and_unchanged(
    run_cli, assert_one_line_error, recognizers, image, tmp_path
):
    gallery = tmp_path / "g.sqlite"
    red, green = image("red.png", RED), image("green.png", GREEN)
    run_cli("gallery", "add", "Ann", str(red), "--gallery", str(gallery))
    before = digest(gallery)
    for command in (["add", "Bob", str(green)], ["search", str(green)]):
        code, _, err = run_cli("gallery", *command, "--gallery", str(gallery), "--model", "other-net")
        assert_one_line_error(code, err, "'fake-net'", "'other-net'")
        assert recognizers[-1].crops == []  # refused before any image was embedded
    assert digest(gallery) == before


@pytest.mark.parametrize(
    "command", [["add", "Ann", "IMG"], ["search", "IMG"], ["list"], ["remove", "Ann"]], ids=lambda c: c[0]
)
def test_a_file_that_is_not_a_gallery_is_refused_before_the_model_loads(
    run_cli, assert_one_line_error, recognizers, image, tmp_path, command
):
    notes = tmp_path / "notes.sqlite"
    notes.write_text("some notes, not a database " * 10)
    before = digest(notes)
    arguments = [str(image("red.png", RED)) if word == "IMG" else word for word in command]
    code, _, err = run_cli("gallery", *arguments, "--gallery", str(notes))
    assert_one_line_error(code, err, "notes.sqlite", "is not an edgevision gallery")
    assert recognizers == [] and digest(notes) == before


@pytest.mark.parametrize("command", [["search", "IMG"], ["list"], ["remove", "Ann"]], ids=lambda c: c[0])
def test_a_missing_gallery_is_one_error_and_is_not_made(
    run_cli, assert_one_line_error, recognizers, image, tmp_path, command
):
    gallery = tmp_path / "none.sqlite"
    arguments = [str(image("red.png", RED)) if word == "IMG" else word for word in command]
    code, _, err = run_cli("gallery", *arguments, "--gallery", str(gallery))
    assert_one_line_error(code, err, "no gallery at", "none.sqlite")
    assert not gallery.exists()


def test_removing_an_unknown_name_is_one_error_and_changes_nothing(
    run_cli, assert_one_line_error, recognizers, image, tmp_path
):
    gallery = tmp_path / "g.sqlite"
    run_cli("gallery", "add", "Ann", str(image("red.png", RED)), "--gallery", str(gallery))
    before = digest(gallery)
    code, _, err = run_cli("gallery", "remove", "Zed", "--gallery", str(gallery))
    assert_one_line_error(code, err, "no one named 'Zed'", "names: Ann")
    assert digest(gallery) == before


def test_a_bad_name_is_refused_before_anything_is_made(
    run_cli, assert_one_line_error, recognizers, image, tmp_path
):
    gallery = tmp_path / "g.sqlite"
    code, _, err = run_cli("gallery", "add", " ", str(image("red.png", RED)), "--gallery", str(gallery))
    assert_one_line_error(code, err, "a name must be")
    assert recognizers == [] and not gallery.exists()


def test_the_default_gallery_is_gallery_sqlite_in_the_current_folder(
    run_cli, recognizers, image, tmp_path, monkeypatch
):
    red = image("red.png", RED)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("gallery", "add", "Ann", str(red))
    assert code == 0 and out.startswith("gallery.sqlite: added 1")
    assert (tmp_path / "gallery.sqlite").is_file()
    code, out, _ = run_cli("gallery", "list", "--json")
    assert json.loads(out)["people"] == {"Ann": 1}
