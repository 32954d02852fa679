"""`edgevision train mobilefacenet`: one-line refusals, before any data is read where no data is
needed to judge, and a run of the real network on ORL crops whose weights load into it."""

from __future__ import annotations

import pytest
import torch

from edgevision.data.paths import default_data_dir
from edgevision.models import create_model

ORL = default_data_dir() / "orl_faces"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--epochs", "1"], ["needs --data DIR", "--distill SET.npz"]),
        (["--distill", "NOSET", "--people", "1-3"], ["--people", "give --data"]),
        (["--distill", "NOSET"], ["teacher set not found", "none.npz"]),
        (["--data", "NODATA", "--margin", "nan"], ["margin", "finite", "nan"]),
        (["--data", "NODATA", "--scale", "-1"], ["scale", "(0, 1024]"]),
        (["--data", "NODATA", "--distill-weight", "inf"], ["distill_weight", "finite"]),
        (["--data", "NODATA", "--lr", "nan"], ["lr", "finite"]),
        (["--data", "NODATA", "--loss", "triplet"], ["loss must be one of"]),
        (["--data", "NODATA", "--image-size", "128"], ["image size 128", "112x112 inputs only"]),
        (["--data", "NODATA", "--teacher", "x.pth"], ["--teacher does not apply to training mobilefacenet"]),
        (["--data", "NODATA"], ["identity folder", "does not exist"]),
        (["--data", "EMPTY"], ["0 person folder(s)", "at least 2"]),
        (["--data", "EMPTY", "--people", "1-2"], ["--people '1-2' is outside positions 1-0"]),
    ],
)
def test_the_command_refuses_what_cannot_train_in_one_line(
    run_cli, assert_one_line_error, tmp_path, args, words
):
    (tmp_path / "empty").mkdir()
    names = {
        "NODATA": str(tmp_path / "none"),
        "NOSET": str(tmp_path / "none.npz"),
        "EMPTY": str(tmp_path / "empty"),
    }
    out = tmp_path / "run"
    code, _, err = run_cli("train", "mobilefacenet", "--out", str(out), *(names.get(a, a) for a in args))
    assert_one_line_error(code, err, *words)
    assert not out.exists()


@pytest.mark.skipif(not ORL.is_dir(), reason=f"ORL faces not found at {ORL}")
@pytest.mark.slow
def test_the_command_trains_mobilefacenet_on_orl_crops(run_cli, tmp_path) -> None:
    """The real network, through the CLI, one step: final.pth loads into MobileFaceNet."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        "train", "mobilefacenet", "--data", str(ORL), "--people", "1-2", "--crops", "--epochs", "1",
        "--batch-size", "20", "--workers", "0", "--out", str(out),
    )  # fmt: skip
    assert code in (0, None), err
    assert f"weights: {out / 'final.pth'}" in stdout
    model = create_model("mobilefacenet", weights=out / "final.pth")
    assert model(torch.zeros(2, 3, 112, 112)).shape == (2, 128)


def test_a_detector_refuses_the_embedding_options(run_cli, assert_one_line_error, tmp_path) -> None:
    """Recipe keywords go only to recipes that take them: a detector's run refuses them."""
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "none"), "--out", str(out), "--people", "1-3", "--crops"]
    code, _, err = run_cli("train", "faceboxes", *args)
    assert_one_line_error(
        code, err, "--people, --crops do not apply to training faceboxes", "single_shot_faces"
    )
    assert not out.exists()
