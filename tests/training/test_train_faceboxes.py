"""Training on a few real WIDER FACE images: it learns, it checkpoints, and resuming a killed run
gives exactly the weights of an uninterrupted one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from edgevision.errors import DatasetError, WeightsError
from edgevision.models.checkpoint import load_checkpoint
from edgevision.training.faceboxes_recipe import train_faceboxes_on_widerface
from edgevision.training.trainer import TrainConfig

pytestmark = pytest.mark.slow


def small_config(out_dir, epochs: int) -> TrainConfig:
    return TrainConfig(
        out_dir=out_dir,
        image_size=256,
        batch_size=4,
        epochs=epochs,
        lr=1e-3,
        warmup_epochs=1,
        milestones=(3,),
        workers=0,
        log_every=1,
    )


def test_resume_equals_uninterrupted_run(data_dir, tmp_path):
    root = data_dir / "widerface"
    torch.set_num_threads(1)
    straight = train_faceboxes_on_widerface(root, small_config(tmp_path / "a", 2), max_images=8)

    train_faceboxes_on_widerface(root, small_config(tmp_path / "b", 1), max_images=8)  # "killed" after 1
    resumed = train_faceboxes_on_widerface(root, small_config(tmp_path / "b", 2), max_images=8, resume=True)

    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert load_checkpoint(tmp_path / "b" / "last.pth")["epoch"] == 1
    epochs = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if "epoch_mean" in r] == [0, 1]
    assert (tmp_path / "b" / "losses.png").read_bytes()[:4] == b"\x89PNG"


def test_loss_falls_when_fitting_a_few_images(data_dir, tmp_path, reference_weights):
    torch.set_num_threads(1)
    config = TrainConfig(
        out_dir=tmp_path,
        image_size=256,
        batch_size=4,
        epochs=6,
        lr=1e-3,
        warmup_epochs=0,
        milestones=(),
        workers=0,
        log_every=1,
    )
    train_faceboxes_on_widerface(
        data_dir / "widerface", config, teacher_weights=reference_weights, max_images=4
    )
    means = [
        json.loads(line)["epoch_mean"]
        for line in (tmp_path / "log.jsonl").read_text().splitlines()
        if "epoch_mean" in line
    ]
    assert set(means[0]) == {"loc", "conf", "distill_conf", "distill_loc"}
    first, last = sum(means[0].values()), sum(means[-1].values())
    assert last < 0.6 * first, (first, last)


def test_data_parallel_over_two_processes(data_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo): each takes half the batches; rank 0 writes the files."""
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    out = tmp_path / "ddp"
    command = [
        torchrun,
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "edgevision.cli",
        "train",
        "faceboxes",
        "--data",
        str(data_dir / "widerface"),
        "--out",
        str(out),
        "--image-size",
        "256",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--max-images",
        "8",
        "--log-every",
        "1",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "step" in r]
    assert steps == [1, 2]  # 8 images / (2 per process x 2 processes)
    assert load_checkpoint(out / "final.pth")["conf.0.weight"].shape == (42, 128, 3, 3)


def test_resume_drops_the_killed_epochs_log_records(data_dir, tmp_path):
    """A kill mid-epoch leaves that epoch's step records and maybe a cut line; resuming keeps only
    the checkpointed epochs' records before logging the redone epoch."""
    root = data_dir / "widerface"
    torch.set_num_threads(1)
    train_faceboxes_on_widerface(root, small_config(tmp_path, 1), max_images=8)
    log = tmp_path / "log.jsonl"
    with log.open("a") as handle:  # what a kill during epoch 1 leaves behind
        handle.write(json.dumps({"epoch": 1, "step": 1, "loc": 99.0}) + "\n" + '{"epoch": 1, "st')
    train_faceboxes_on_widerface(root, small_config(tmp_path, 2), max_images=8, resume=True)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["epoch"], r.get("step")) for r in records] == [
        (0, 1),
        (0, 2),
        (0, None),
        (1, 1),
        (1, 2),
        (1, None),
    ]
    assert all(r.get("loc") != 99.0 for r in records)


def test_bad_runs_fail_before_training(data_dir, tmp_path):
    root = data_dir / "widerface"
    with pytest.raises(WeightsError, match="nothing to resume"):
        train_faceboxes_on_widerface(root, small_config(tmp_path / "none", 1), max_images=8, resume=True)
    with pytest.raises(DatasetError, match="no full batch"):
        train_faceboxes_on_widerface(root, small_config(tmp_path / "few", 1), max_images=3)
    assert not (tmp_path / "few" / "final.pth").exists()
