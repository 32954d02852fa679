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


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("yunet", ["yunet=PATH"]),
        ("nosuch=x.pth", ["unknown teacher 'nosuch'", "yunet, faceboxes"]),
        ("yunet=missing.onnx", ["YuNet weights not found", "missing.onnx"]),
        ("yunet=TEXT", ["not a YuNet face detector"]),
        ("faceboxes=TEXT", ["not a PyTorch weights file"]),
    ],
)
def test_train_refuses_a_soft_teacher_it_cannot_run_before_anything_is_written(
    run_cli, assert_one_line_error, tmp_path, spec, words
):
    text = tmp_path / "teacher.onnx"
    text.write_text("not a model\n")
    out = tmp_path / "run"
    teacher = spec.replace("TEXT", str(text))
    options = ["--out", str(out), "--image-size", "256", "--soft-teacher", teacher]
    code, _, err = run_cli("train", "faceboxes", "--data", str(tmp_path / "no_data"), *options)
    assert_one_line_error(code, err, *words)
    assert not out.exists()


@pytest.mark.slow
def test_train_with_two_calibrated_soft_teachers_logs_their_losses(
    run_cli, data_dir, shared_weights, tmp_path, monkeypatch
):
    """YuNet and the reference FaceBoxes, calibrated on the 2 WIDER images and ensembled, for one
    step: the run logs the soft-target losses beside the multibox ones and records its teachers
    and their calibrations (non-decreasing maps into [0, 1]) in the checkpoint."""
    import json

    import torch

    from edgevision.models.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    yunet = f"yunet={shared_weights('yunet/yunet_n_dynamic.onnx')}"
    faceboxes = f"faceboxes={shared_weights('faceboxes_reference/FaceBoxesProd.pth')}"
    out = tmp_path / "run"
    code, _, err = run_cli(
        "train", "faceboxes", "--data", str(data_dir / "widerface"), "--out", str(out),
        "--image-size", "256", "--batch-size", "2", "--epochs", "1", "--workers", "0",
        "--max-images", "2", "--log-every", "1", "--soft-teacher", yunet, "--soft-teacher", faceboxes,
        "--calibrate-teachers",
    )  # fmt: skip
    assert code in (0, None), err
    step = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert {"loc", "conf", "soft_conf", "soft_loc"} <= set(step)
    config = load_checkpoint(out / "last.pth")["config"]
    assert config["teachers"] == [yunet, faceboxes]
    calibrations = config["extra"]["teacher_calibration"]
    assert list(calibrations) == [yunet, faceboxes]
    for fitted in calibrations.values():
        probabilities = fitted["probabilities"]
        assert len(fitted["scores"]) == len(probabilities) >= 2
        assert probabilities == sorted(probabilities) and 0 <= probabilities[0] <= probabilities[-1] <= 1

    # A resumed run takes the calibrations its checkpoint holds: no teacher runs over the images.
    import edgevision.training.single_shot_faces as recipe

    monkeypatch.setattr(recipe, "calibrate", lambda *_: pytest.fail("calibrated again on resume"))
    code, _, err = run_cli(
        "train", "faceboxes", "--data", str(data_dir / "widerface"), "--out", str(out),
        "--image-size", "256", "--batch-size", "2", "--epochs", "2", "--workers", "0",
        "--max-images", "2", "--log-every", "1", "--soft-teacher", yunet, "--soft-teacher", faceboxes,
        "--calibrate-teachers", "--resume",
    )  # fmt: skip
    assert code in (0, None), err
    resumed = load_checkpoint(out / "last.pth")
    assert resumed["epoch"] == 1 and resumed["config"]["extra"]["teacher_calibration"] == calibrations


def test_train_refuses_to_calibrate_without_a_soft_teacher(run_cli, assert_one_line_error, tmp_path):
    out = tmp_path / "run"
    options = ["--out", str(out), "--calibrate-teachers"]
    code, _, err = run_cli("train", "faceboxes", "--data", str(tmp_path / "no_data"), *options)
    assert_one_line_error(code, err, "calibrating teachers needs a teacher", "--soft-teacher")
    assert not out.exists()


def test_init_weights_start_the_run_from_them(run_cli, assert_one_line_error, tmp_path, data_dir):
    """--init-weights: training starts from the given weights (here with a learning rate too small
    to move them); a file that is not weights is refused before the data is read."""
    import torch

    from edgevision.models import model_info
    from edgevision.models.checkpoint import load_checkpoint

    bad = tmp_path / "bad.pth"
    bad.write_text("not weights\n")
    code, _, err = run_cli(
        "train", "faceboxes", "--data", str(tmp_path / "no_data"), "--out", str(tmp_path / "x"),
        "--image-size", "128", "--init-weights", str(bad),
    )  # fmt: skip
    assert_one_line_error(code, err, "not a PyTorch weights file")
    bundled = model_info("faceboxes").weights_path
    code, _, err = run_cli(
        "train", "faceboxes", "--data", str(data_dir / "widerface"), "--out", str(tmp_path / "run"),
        "--image-size", "128", "--batch-size", "4", "--epochs", "1", "--max-images", "4", "--workers", "0",
        "--lr", "1e-12", "--warmup-epochs", "0", "--milestones", "", "--init-weights", str(bundled),
    )  # fmt: skip
    assert code == 0, err
    final, start = load_checkpoint(tmp_path / "run" / "final.pth"), load_checkpoint(bundled)
    torch.testing.assert_close(final["conv1.conv.weight"], start["conv1.conv.weight"], rtol=0, atol=1e-6)
