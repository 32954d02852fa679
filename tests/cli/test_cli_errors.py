"""Every bad input ends in one line on stderr naming the problem, exit code 2, no output file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch


def assert_no_output(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_missing_path(run_cli, assert_one_line_error, tmp_path, reference_weights):
    code, _, err = run_cli(
        "detect",
        str(tmp_path / "nope.jpg"),
        "--weights",
        str(reference_weights),
        "--out",
        str(tmp_path / "out"),
    )
    assert_one_line_error(code, err, "nope.jpg")
    assert_no_output(tmp_path / "out")


def test_non_image_file(run_cli, assert_one_line_error, tmp_path, reference_weights):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    code, _, err = run_cli(
        "detect",
        str(text),
        "--weights",
        str(reference_weights),
        "--out",
        str(tmp_path / "out"),
        "--strict",  # without it, a warning and a summary: tests/cli/test_detect_inputs.py
    )
    assert_one_line_error(code, err, "notes.jpg", "image")
    assert_no_output(tmp_path / "out")


def test_truncated_jpeg(run_cli, assert_one_line_error, tmp_path, data_dir, reference_weights):
    source = sorted((data_dir / "widerface" / "WIDER_val" / "images").rglob("*.jpg"))[0]
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(source.read_bytes()[:20000])
    out = tmp_path / "out"
    code, _, err = run_cli(
        "detect", str(truncated), "--weights", str(reference_weights), "--out", str(out), "--strict"
    )
    assert_one_line_error(code, err, "truncated", "cut.jpg")
    assert_no_output(out)


def test_empty_folder(run_cli, assert_one_line_error, tmp_path, reference_weights):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("detect", str(tmp_path / "empty"), "--weights", str(reference_weights))
    assert_one_line_error(code, err, "no images", "empty")


def test_unknown_model(run_cli, assert_one_line_error, astronaut_path):
    code, _, err = run_cli("detect", str(astronaut_path), "--model", "yolo9000")
    assert_one_line_error(code, err, "yolo9000", "faceboxes")


def test_weights_of_wrong_architecture(run_cli, assert_one_line_error, tmp_path, astronaut_path):
    wrong = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(10, 512)}, wrong)
    code, _, err = run_cli(
        "detect", str(astronaut_path), "--weights", str(wrong), "--out", str(tmp_path / "out")
    )
    assert_one_line_error(code, err, "resnet.pth", "does not fit", "faceboxes")
    assert_no_output(tmp_path / "out")


def test_corrupt_weights_file(run_cli, assert_one_line_error, tmp_path, astronaut_path, reference_weights):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(reference_weights.read_bytes()[:100_000])
    code, _, err = run_cli("detect", str(astronaut_path), "--weights", str(cut))
    assert_one_line_error(code, err, "cut.pth")


def test_detect_writes_annotated_image_and_json(run_cli, tmp_path, astronaut_path, reference_weights):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        "detect",
        str(astronaut_path),
        "--weights",
        str(reference_weights),
        "--out",
        str(out),
        "--json",
    )
    assert code == 0
    record = json.loads(stdout.strip().splitlines()[0])
    assert record["path"] == str(astronaut_path)
    assert len(record["faces"]) == 1  # one astronaut
    x1, y1, x2, y2 = record["faces"][0]["box"]
    assert 150 < x1 < x2 < 300 and 40 < y1 < y2 < 200
    assert (out / "astronaut.jpg").stat().st_size > 10_000
    assert [p.name for p in out.iterdir()] == ["astronaut.jpg"]  # no temporary file left


def test_detect_on_a_folder(run_cli, tmp_path, astronaut_path, reference_weights):
    """A folder is searched recursively; one JSON line per image, in sorted path order."""
    folder = tmp_path / "photos"
    for sub, stem in (("b", "first"), ("a", "second")):  # path order differs from stem order
        (folder / sub).mkdir(parents=True)
        shutil.copy(astronaut_path, folder / sub / f"{stem}.png")
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        "detect", str(folder), "--weights", str(reference_weights), "--out", str(out), "--json"
    )
    assert code == 0
    records = [json.loads(line) for line in stdout.strip().splitlines()]
    assert [r["path"] for r in records] == [str(folder / "a" / "second.png"), str(folder / "b" / "first.png")]
    assert len(records[0]["faces"]) == 1 and records[1]["faces"] == records[0]["faces"]
    assert sorted(p.name for p in out.iterdir()) == ["first.jpg", "second.jpg"]


def test_detect_on_a_video(run_cli, tmp_path, astronaut_path, reference_weights):
    """Each frame gets a JSON line with its index; the annotated video is written whole."""
    import cv2

    frame = cv2.resize(cv2.imread(str(astronaut_path)), (320, 256))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (320, 256))
    for shift in range(3):
        writer.write(np.roll(frame, 8 * shift, axis=1))
    writer.release()

    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        "detect",
        str(video),
        "--weights",
        str(reference_weights),
        "--out",
        str(out),
        "--json",
    )
    assert code == 0
    records = [json.loads(line) for line in stdout.strip().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert all(len(r["faces"]) == 1 for r in records)
    boxes = [r["faces"][0]["box"][0] for r in records]
    assert boxes[1] - boxes[0] == pytest.approx(8, abs=3)  # the face moves with the frame
    assert [p.name for p in out.iterdir()] == ["clip.mp4"]
    assert cv2.VideoCapture(str(out / "clip.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3
