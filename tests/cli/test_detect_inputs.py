"""``edgevision detect`` over inputs some of which are bad: skipped with a warning (or, with
``--strict``, the first stops the run), a summary, exit 2; options refused before any work.

The bundled weights are used, so these tests need no shared data."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from edgevision.data.io import MAX_PIXELS_ENV

ASTRONAUT_BOX = [182.08, 64.48, 267.2, 173.18]  # the bundled model's one face on the photo


@pytest.fixture()
def mixed_folder(tmp_path: Path, astronaut_path: Path, header_only_png: Callable[[int, int], Path]) -> Path:
    """a_good.png (one face), b_text.jpg (not an image), c_bomb.png (header: 60000x60000)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(astronaut_path, folder / "a_good.png")
    (folder / "b_text.jpg").write_text("not an image")
    shutil.copy(header_only_png(60000, 60000), folder / "c_bomb.png")
    return folder


def stderr_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_bad_inputs_are_skipped_reported_and_counted(run_cli, mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, err = run_cli("detect", str(mixed_folder), "--out", str(out), "--json")
    assert code == 2
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["path"] for r in records] == [str(mixed_folder / "a_good.png")]
    assert [face["box"] for face in records[0]["faces"]] == [ASTRONAUT_BOX]
    assert isinstance(records[0]["ms"], float) and records[0]["ms"] > 0
    warnings, summary = stderr_lines(err)[:-1], stderr_lines(err)[-1]
    text, bomb = mixed_folder / "b_text.jpg", mixed_folder / "c_bomb.png"
    assert warnings == [
        f"warning: skipped {text}: not a readable image: {text}",
        f"warning: skipped {bomb}: image {bomb} has more than 178,956,970 pixels, over the limit of "
        f"50,000,000 (raise it with --max-pixels or {MAX_PIXELS_ENV})",
    ]
    assert summary.startswith("summary: 1 image(s): 1 face(s); ")
    assert re.search(r"; \d+\.\d s in all, \d+\.\d ms per inference on average; ", summary)
    assert summary.endswith(f"; outputs in {out}; 2 input(s) skipped (see the warnings above)")
    assert [p.name for p in out.iterdir()] == ["a_good.jpg"]


def test_text_output_gives_each_image_its_time(run_cli, astronaut_path: Path) -> None:
    code, stdout, err = run_cli("detect", str(astronaut_path))
    assert code == 0
    assert re.fullmatch(
        rf"{re.escape(str(astronaut_path))}: 1 face\(s\) in \d+\.\d ms", stdout.splitlines()[0]
    )
    assert stdout.splitlines()[1] == f"  box={ASTRONAUT_BOX} score=0.9931"
    assert stderr_lines(err)[-1].startswith("summary: 1 image(s): 1 face(s); ")
    assert "skipped" not in err


def test_strict_stops_at_the_first_bad_input(run_cli, assert_one_line_error, mixed_folder, tmp_path) -> None:
    out = tmp_path / "out"
    code, stdout, err = run_cli("detect", str(mixed_folder), "--out", str(out), "--strict")
    assert_one_line_error(code, err, "not a readable image", "b_text.jpg")
    assert stdout.startswith(f"{mixed_folder / 'a_good.png'}: 1 face(s)")
    assert [p.name for p in out.iterdir()] == ["a_good.jpg"]  # the inputs before it, each whole


def test_the_pixel_cap_can_be_raised(run_cli, astronaut_path: Path, monkeypatch) -> None:
    # The photo is 512x512 = 262,144 pixels.
    code, _, err = run_cli("detect", str(astronaut_path), "--max-pixels", "262143")
    assert code == 2
    assert "512x512 = 262,144 pixels, over the limit of 262,143" in err
    code, stdout, _ = run_cli("detect", str(astronaut_path), "--max-pixels", "262144")
    assert code == 0 and "1 face(s)" in stdout
    monkeypatch.setenv(MAX_PIXELS_ENV, "262143")
    code, _, err = run_cli("detect", str(astronaut_path))
    assert code == 2 and "over the limit of 262,143" in err
    # The network input is capped too: x2 makes it 1024x1024.
    code, _, err = run_cli("detect", str(astronaut_path), "--max-pixels", "1000000", "--scale", "2")
    assert code == 2 and "the image scaled by 2 is 1024x1024 = 1,048,576 pixels, over the limit" in err


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--scale", "nan"),
        ("--scale", "inf"),
        ("--scale", "1e6"),
        ("--scale", "0"),
        ("--scale", "-1"),
        ("--threshold", "nan"),
        ("--threshold", "-1"),
        ("--threshold", "2"),
        ("--nms-iou", "nan"),
        ("--nms-iou", "1.5"),
        ("--max-pixels", "0"),
        ("--device", "tpu"),
        ("--scales", "0,1"),
        ("--scales", "1,-0.5"),
        ("--scales", "1,nan"),
        ("--scales", "1,,2"),
        ("--scales", ""),
    ],
)
def test_bad_numbers_are_refused_before_any_work(
    run_cli, assert_one_line_error, astronaut_path: Path, tmp_path: Path, option: str, value: str
) -> None:
    out = tmp_path / "out"
    code, stdout, err = run_cli("detect", str(astronaut_path), "--out", str(out), option, value)
    assert_one_line_error(code, err, option)
    assert stdout == "" and not out.exists()


def test_a_pyramid_scale_over_the_cap_is_skipped_with_one_warning_line(run_cli, astronaut_path: Path) -> None:
    """The 512x512 photo at 1x and 2x under a cap of its own size: 2x (1024x1024) is skipped with
    one warning line, 1x still finds the face; with 2x alone there is nothing to run: an error."""
    code, stdout, err = run_cli("detect", str(astronaut_path), "--scales", "1,2", "--max-pixels", "262144")
    assert code == 0 and "1 face(s)" in stdout
    assert [line for line in err.splitlines() if line.strip() and not line.startswith("summary:")] == [
        "warning: pyramid scale 2 skipped: the image scaled by 2 is 1024x1024 = 1,048,576 pixels, over the "
        "limit of 262,144 (raise it with --max-pixels or EDGEVISION_MAX_PIXELS)"
    ]
    code, _, err = run_cli("detect", str(astronaut_path), "--scales", "2", "--max-pixels", "262144")
    assert code == 2 and "the image scaled by 2 is 1024x1024" in err and "warning: pyramid" not in err


def test_bad_environment_cap_is_refused_before_any_work(
    run_cli, assert_one_line_error, astronaut_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    code, stdout, err = run_cli("detect", str(astronaut_path))
    assert_one_line_error(code, err, MAX_PIXELS_ENV, "'lots'")
    assert stdout == ""


def count_faces(run_cli, path: Path, *options: str) -> int:
    code, stdout, _ = run_cli("detect", str(path), "--json", "--threshold", "0", *options)
    assert code == 0
    return len(json.loads(stdout.splitlines()[0])["faces"])


def test_nms_options_reach_the_post_processing(run_cli, astronaut_path: Path) -> None:
    # Every box above the 0.05 pre-NMS confidence: NMS at IoU 0.3 keeps 2, at 0.9 keeps 8 (the
    # neighbours of the face survive); --keep and --top-k cut the list after and before NMS.
    assert count_faces(run_cli, astronaut_path) == 2
    assert count_faces(run_cli, astronaut_path, "--nms-iou", "0.9") == 8
    assert count_faces(run_cli, astronaut_path, "--nms-iou", "0.9", "--keep", "3") == 3
    assert count_faces(run_cli, astronaut_path, "--nms-iou", "0.9", "--top-k", "1") == 1


def test_device_choice(run_cli, assert_one_line_error, astronaut_path: Path) -> None:
    import torch

    code, stdout, _ = run_cli("detect", str(astronaut_path), "--device", "cpu")
    assert code == 0 and "1 face(s)" in stdout
    if not torch.cuda.is_available():
        code, _, err = run_cli("detect", str(astronaut_path), "--device", "cuda")
        assert_one_line_error(code, err, "device cuda (--device)", "no CUDA device")


def test_folder_and_odd_paths(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("detect", str(tmp_path / "empty"))
    assert_one_line_error(code, err, "no images or videos in folder", "empty")
    code, _, err = run_cli("detect", "/dev/null", "--strict")
    assert_one_line_error(code, err, "expected a file, got not a regular file", "/dev/null")
