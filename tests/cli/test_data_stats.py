"""``edgevision data stats openimages``: the class table and chart, and one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def oid_dir(data_dir: Path) -> Path:
    folder = data_dir / "openimages"
    if not (folder / "class-descriptions-boxable.csv").is_file():
        pytest.skip(f"Open Images metadata not found at {folder}")
    return folder


def test_stats_of_the_real_sample(run_cli, tmp_path: Path, oid_dir: Path) -> None:
    out = tmp_path / "charts" / "stats.png"
    code, stdout, _ = run_cli("data", "stats", "openimages", "--data", str(oid_dir), "--out", str(out))
    assert code in (0, None)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if line.count("│") >= 8}
    assert len(rows) == 13 + 1  # 13 classes and the total (the header is drawn with ┃)
    assert [cell.strip() for cell in rows["Plate"].split("│")[2:8]] == [
        "/m/050gv4", "4,814", "58", "207", "5,079", "2,039"
    ]  # fmt: skip
    assert [cell.strip() for cell in rows["all"].split("│")[3:7]] == ["35,837", "807", "2,287", "38,931"]
    assert f"chart: {out}" in stdout


def test_missing_folder(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    out = tmp_path / "stats.png"
    code, _, err = run_cli(
        "data",
        "stats",
        "openimages",
        "--data",
        str(tmp_path / "nope"),
        "--out",
        str(out),
    )
    assert_one_line_error(code, err, "Open Images folder not found", "nope")
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(
        "data", "stats", "openimages", "--data", str(tmp_path / "afile"), "--out", str(out)
    )
    assert_one_line_error(code, err, "Open Images folder is a file, not a folder", "afile")
    assert not out.exists()


def test_missing_files(run_cli, assert_one_line_error, tmp_path: Path, oid_dir: Path) -> None:
    folder = tmp_path / "oid"
    folder.mkdir()
    out = tmp_path / "stats.png"
    code, _, err = run_cli("data", "stats", "openimages", "--data", str(folder), "--out", str(out))
    assert_one_line_error(code, err, "-annotations-bbox.csv")
    shutil.copy(oid_dir / "subset-validation-annotations-bbox.csv", folder)
    code, _, err = run_cli("data", "stats", "openimages", "--data", str(folder), "--out", str(out))
    assert_one_line_error(code, err, "class descriptions not found", "class-descriptions-boxable.csv")
    (folder / "class-descriptions-boxable.csv").write_text("/m/050gv4,Plate\n")
    code, _, err = run_cli("data", "stats", "openimages", "--data", str(folder), "--out", str(out))
    assert_one_line_error(code, err, "is not in")
    assert not out.exists()


def test_unknown_dataset(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    code, _, err = run_cli("data", "stats", "coco", "--out", str(tmp_path / "s.png"))
    assert_one_line_error(code, err, "'openimages' only", "coco")


def test_bad_options(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    code, _, err = run_cli("data", "stats", "openimages", "--out", str(tmp_path / "s.jpg"))
    assert_one_line_error(code, err, "--out", "s.jpg")
    code, _, err = run_cli("data", "stats", "openimages", "--top", "0", "--out", str(tmp_path / "s.png"))
    assert_one_line_error(code, err, "--top")
    assert not list(tmp_path.iterdir())


def test_text_that_is_not_utf8(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    folder = tmp_path / "oid"
    folder.mkdir()
    (folder / "class-descriptions-boxable.csv").write_bytes(b"/m/050gv4,Plate\n")
    boxes = folder / "subset-validation-annotations-bbox.csv"
    rows = [b"ImageID,LabelName,XMin,XMax,YMin,YMax\n"] + [b"img%d,/m/050gv4,0,1,0,1\n" % i for i in range(5)]
    rows[4] = b"img\xe9,/m/050gv4,0,1,0,1\n"  # Latin-1, on line 5
    boxes.write_bytes(b"".join(rows))
    out = tmp_path / "stats.png"
    code, _, err = run_cli("data", "stats", "openimages", "--data", str(folder), "--out", str(out))
    assert_one_line_error(code, err, f"{boxes} line 5 is not UTF-8 text (byte 0xe9)")
    boxes.write_bytes(b"".join(rows[:4]))
    (folder / "class-descriptions-boxable.csv").write_bytes(b"/m/050gv4,Pl\xe2te\n")
    code, _, err = run_cli("data", "stats", "openimages", "--data", str(folder), "--out", str(out))
    assert_one_line_error(code, err, "class-descriptions-boxable.csv line 1 is not UTF-8 text (byte 0xe2)")
    assert not out.exists()
