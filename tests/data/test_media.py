"""Reading videos: a damaged one is told apart from one that ended."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgevision.data.media import VideoFrames
from edgevision.errors import InputFileError


def test_whole_video_reads_every_frame(make_video: Callable[..., Path], tmp_path: Path) -> None:
    frames = VideoFrames(make_video(tmp_path / "clip.mp4", 30))
    assert frames.frame_count == 30
    assert [frame.shape for frame in frames] == [(128, 160, 3)] * 30
    frames.check_complete()
    assert frames.decoded == 30


def test_damaged_video_is_reported_with_its_frame_counts(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    frames = VideoFrames(make_video(tmp_path / "clip.mp4", 30, damaged=True))
    decoded = sum(1 for _ in frames)
    assert 0 < decoded < 30  # what OpenCV gives: the frames before the damage, and no error
    with pytest.raises(
        InputFileError, match=rf"damaged or cut-short video: decoded {decoded} of its 30 frames"
    ):
        frames.check_complete()


def test_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(InputFileError, match="not a readable video"):
        VideoFrames(tmp_path / "notes.mp4")
