"""``edgevision detect`` on videos: damage is reported, and an interrupted run (SIGTERM as
Ctrl-C) leaves no temporary video behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import edgevision


def test_damaged_video_is_a_failed_input(run_cli, make_video: Callable[..., Path], tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.mp4", 30, damaged=True)
    out = tmp_path / "out"
    code, stdout, err = run_cli("detect", str(video), "--out", str(out), "--json")
    assert code == 2
    frames = [json.loads(line)["frame"] for line in stdout.splitlines()]
    decoded = len(frames)
    assert 0 < decoded < 30 and frames == list(range(decoded))
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0] == (
        f"warning: skipped {video}: damaged or cut-short video: decoded {decoded} of its 30 frames: {video}"
    )
    assert lines[1].startswith("summary: 0 image(s): 0 face(s); ") and "1 input(s) skipped" in lines[1]
    assert not out.exists() or list(out.iterdir()) == []  # no annotated copy of a part of it


def test_whole_video_reports_frames_and_time(
    run_cli, make_video: Callable[..., Path], tmp_path: Path
) -> None:
    video = make_video(tmp_path / "clip.mp4", 5, size=(320, 256))
    code, stdout, err = run_cli("detect", str(video))
    assert code == 0
    assert re.fullmatch(
        rf"{re.escape(str(video))}: 5 frame\(s\), 5 face\(s\) in all, \d+\.\d ms a frame", stdout.strip()
    )
    assert "summary: 0 image(s), 1 video(s) of 5 frame(s): 5 face(s); " in err


def test_sigterm_mid_video_leaves_no_temporary_file(make_video: Callable[..., Path], tmp_path: Path) -> None:
    video = make_video(tmp_path / "long.mp4", 600, size=(320, 256))
    out = tmp_path / "out"
    temporary = out / ".long.tmp.mp4"  # AtomicVideoWriter's name for it
    env = {**os.environ, "PYTHONPATH": str(Path(edgevision.__file__).parents[1])}  # this checkout
    command = [sys.executable, "-m", "edgevision.cli", "detect", str(video), "--out", str(out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300  # a guard for a stuck run, not a measurement
        while not temporary.exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no temporary video appeared"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    finally:
        process.kill()
        process.stderr.close()
    assert list(out.iterdir()) == []
    assert code == 128 + signal.SIGTERM  # exited through Python, with the shell's status for SIGTERM
