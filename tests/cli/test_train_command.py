"""`edgevision train` refuses, in one line and before it reads any data, what cannot train."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--lr", "inf"], ["lr", "finite", "inf"]),
        (["--lr", "nan"], ["lr", "finite", "nan"]),
        (["--warmup-epochs", "nan"], ["warmup_epochs", "finite"]),
        (["--batch-size", "0"], ["batch_size", "positive"]),
        (["--image-size", "33"], ["image size 33", "multiple", "128"]),
        (["--image-size", "1000"], ["image size 1000", "e.g. 1024"]),
    ],
)
def test_train_refuses_options_that_cannot_train(run_cli, assert_one_line_error, tmp_path, options, words):
    out = tmp_path / "run"
    # The data folder does not exist: the options must be refused before it is looked at.
    data = str(tmp_path / "no_data")
    code, _, err = run_cli("train", "faceboxes", "--data", data, "--out", str(out), *options)
    assert_one_line_error(code, err, *words)
    assert not out.exists()


def test_train_refuses_a_teacher_that_is_not_weights_before_reading_data(
    run_cli, assert_one_line_error, tmp_path
):
    teacher = tmp_path / "teacher.pth"
    teacher.write_text("not weights\n")
    code, _, err = run_cli(
        "train",
        "faceboxes",
        "--data",
        str(tmp_path / "no_data"),
        "--out",
        str(tmp_path / "run"),
        "--image-size",
        "256",
        "--teacher",
        str(teacher),
    )
    assert_one_line_error(code, err, "not a PyTorch weights file", "teacher.pth")


def test_train_refuses_an_output_path_that_is_a_file(run_cli, assert_one_line_error, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    code, _, err = run_cli("train", "faceboxes", "--data", str(tmp_path / "no_data"), "--out", str(taken))
    assert_one_line_error(code, err, "taken", "output folder")
