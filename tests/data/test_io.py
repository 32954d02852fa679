"""Image reading under the pixel cap, output-path checks, and atomic files and folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.data.io import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    atomic_dir,
    atomic_write,
    atomic_write_files,
    check_output_dir,
    check_output_file,
    max_pixels_limit,
    read_image,
    read_image_size,
)
from edgevision.errors import ConfigError, ImageDecodeError, InputFileError


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    """A 200x100 (W x H) PNG: 20,000 pixels."""
    path = tmp_path / "photo.png"
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :, 2] = np.arange(200, dtype=np.uint8)  # red ramp along x
    cv2.imwrite(str(path), image)
    return path


def test_a_huge_header_is_refused_before_decoding(header_only_png: Callable[[int, int], Path]) -> None:
    # OpenCV's assertion (and Pillow's bomb error) would name no limit; the pixel data is 10 bytes,
    # so any decoding attempt would fail as "not a readable image" instead.
    for width, height in ((60000, 60000), (16000, 16000), (7072, 7072)):
        path = header_only_png(width, height)
        with pytest.raises(ImageDecodeError, match=rf"{path.name}.*over the limit of 50,000,000") as caught:
            read_image(path)
        assert "--max-pixels" in str(caught.value) and MAX_PIXELS_ENV in str(caught.value)
    assert "7072x7072 = 50,013,184 pixels" in str(caught.value)
    with pytest.raises(ImageDecodeError, match="over the limit"):
        read_image_size(header_only_png(7072, 7072))


def test_the_cap_is_raised_by_argument_or_environment(photo: Path, monkeypatch) -> None:
    assert read_image_size(photo) == (200, 100)
    assert read_image(photo, max_pixels=20_000).shape == (100, 200, 3)
    with pytest.raises(ImageDecodeError, match=r"200x100 = 20,000 pixels, over the limit of 19,999"):
        read_image(photo, max_pixels=19_999)
    monkeypatch.setenv(MAX_PIXELS_ENV, "19999")
    assert max_pixels_limit() == 19_999
    with pytest.raises(ImageDecodeError, match="over the limit of 19,999"):
        read_image(photo)
    assert read_image(photo, max_pixels=20_000)[0, 199, 2] == 199  # the argument wins
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ConfigError, match=f"{MAX_PIXELS_ENV} must be a whole number of pixels, got 'lots'"):
        read_image(photo)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS
    for bad in (0, -5, 2.5, True, 10**9):
        with pytest.raises(ConfigError, match="max_pixels"):
            max_pixels_limit(bad)


def test_unreadable_paths_and_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="expected a file, got a folder"):
        read_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty file"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("not an image")
    for reader in (read_image, read_image_size):
        with pytest.raises(ImageDecodeError, match="not a readable image"):
            reader(tmp_path / "notes.png")


def test_output_folder_checks(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created
    with pytest.raises(InputFileError, match=r"^--out .*afile is a file, not a folder$"):
        check_output_dir(afile, "--out")
    with pytest.raises(InputFileError, match=r"afile/sub is inside .*afile, which is a file"):
        check_output_dir(afile / "sub", "--out")
    with pytest.raises(InputFileError, match=r"^-o .*sub is a folder; give a file name$"):
        check_output_file(_folder(tmp_path / "sub"), "-o")
    with pytest.raises(InputFileError, match=r"chart.png: the folder .*afile is a file, not a folder"):
        check_output_file(afile / "chart.png", "--out")


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def test_output_folder_without_write_permission(tmp_path: Path, monkeypatch) -> None:
    # root writes into a read-only folder, so the refusal is shown through os.access, as the
    # check asks the kernel; test_read_only_folder_as_a_user below runs it for real.
    calls = []

    def access(path, mode):
        calls.append(Path(path))
        return False

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(InputFileError, match=r"--out .*out: cannot write into .* \(permission denied\)"):
        check_output_dir(tmp_path / "out", "--out")
    assert calls == [tmp_path]  # the nearest existing parent is asked


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_folder_as_a_user(tmp_path: Path) -> None:
    locked = _folder(tmp_path / "locked")
    locked.chmod(0o555)
    try:
        with pytest.raises(InputFileError, match="permission denied"):
            check_output_dir(locked / "out", "--out")
        with pytest.raises(InputFileError, match="cannot write"):
            with atomic_write(locked / "x.txt", "w") as handle:
                handle.write("x")
    finally:
        locked.chmod(0o755)


def test_atomic_write_errors_are_one_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "results.json")
    with pytest.raises(InputFileError, match=r"cannot write .*results.json: it is a folder"):
        with atomic_write(folder, "w") as handle:
            handle.write("{}")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputFileError, match=r"cannot write .*afile/x.json: .*afile"):
        with atomic_write(tmp_path / "afile" / "x.json", "w") as handle:
            handle.write("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "results.json"]  # no temporary


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "predictions"
    with atomic_dir(target) as filling:
        (filling / "a.txt").write_text("first")
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_umask())

    with pytest.raises(RuntimeError):
        with atomic_dir(target) as filling:
            (filling / "b.txt").write_text("second")
            raise RuntimeError("the run failed")
    assert [p.name for p in target.iterdir()] == ["a.txt"]  # the earlier run's, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["predictions"]  # no temporary left

    with atomic_dir(target) as filling:
        (filling / "c.txt").write_text("third")
    assert [p.name for p in target.iterdir()] == ["c.txt"]  # replaced, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["predictions"]

    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputFileError, match="a file of that name is in the way"):
        with atomic_dir(tmp_path / "afile"):
            pass


def test_atomic_write_files_writes_all_or_none(tmp_path: Path, monkeypatch) -> None:
    files = {tmp_path / "a.png": b"png", tmp_path / "sub" / "a.mtl": b"mtl", tmp_path / "a.obj": b"obj"}
    atomic_write_files(files)
    for path, data in files.items():
        assert path.read_bytes() == data
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.obj", "a.png", "sub"]

    # The last rename fails: the two files already renamed are deleted, no temporary is left.
    real_replace, calls = os.replace, []

    def replace(source: str, target: Path) -> None:
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    fresh = {tmp_path / "b" / name: b"x" for name in ("b.png", "b.mtl", "b.obj")}
    with pytest.raises(InputFileError, match=r"cannot write .*b.obj: no space left on device"):
        atomic_write_files(fresh)
    assert list((tmp_path / "b").iterdir()) == []
    monkeypatch.undo()

    with pytest.raises(InputFileError, match="it is a folder"):
        atomic_write_files({tmp_path / "c.png": b"x", tmp_path / "sub": b"y"})
    assert not (tmp_path / "c.png").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
