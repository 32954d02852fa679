"""A training run refuses what cannot train before it reads data (non-finite options, sizes the
network cannot use, an unusable output folder), stops at the first non-finite loss, and never
writes a non-finite checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from edgevision.errors import ConfigError, DatasetError, TrainingDivergedError
from edgevision.models import create_model
from edgevision.models.checkpoint import load_checkpoint
from edgevision.training.config import TrainConfig, prepare_run
from edgevision.training.single_shot_faces import (
    train_single_shot,
    train_single_shot_faces,
    widerface_training_set,
)


def tiny_config(out_dir: Path, **overrides) -> TrainConfig:
    settings = dict(image_size=128, batch_size=2, epochs=2, warmup_epochs=0, milestones=(), workers=0)
    return TrainConfig(out_dir=out_dir, **{**settings, "log_every": 1, **overrides})


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("lr", math.inf, "finite"),
        ("lr", math.nan, "finite"),
        ("lr", 0.0, "positive"),
        ("lr", -1e-3, "positive"),
        ("warmup_epochs", math.nan, "finite"),
        ("weight_decay", math.inf, "finite"),
        ("momentum", 1.0, "below 1"),
        ("gamma", 0.0, "positive"),
        ("distill_loc_weight", math.nan, "finite"),
        ("distill_conf_weight", -1.0, "zero or more"),
    ],
)
def test_non_finite_or_out_of_range_options_are_refused(tmp_path, option, value, words) -> None:
    with pytest.raises(ConfigError, match=f"{option} must be .*{words}") as info:
        tiny_config(tmp_path, **{option: value})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("size", [33, 64, 200, 1000])
def test_sizes_faceboxes_cannot_use_are_refused_before_data_is_read(tmp_path, size) -> None:
    out = tmp_path / "run"
    # The data folder does not exist: an error about it would mean the data was looked at first.
    with pytest.raises(ConfigError, match=f"image size {size} .*multiple of its largest anchor stride, 128"):
        train_single_shot_faces("faceboxes", tmp_path / "no_such_data", tiny_config(out, image_size=size))
    assert not out.exists()


def test_the_stride_is_the_models_and_its_multiples_pass(tmp_path) -> None:
    model = create_model("faceboxes")
    assert model.max_stride == 128  # FaceBoxes' 512 px anchors sit on stride 128
    for size in (128, 256, 1024):
        prepare_run(tiny_config(tmp_path / str(size), image_size=size), model)
    coarse = create_model("faceboxes", anchor_levels=model.config.anchor_levels[:2])  # down to stride 64
    prepare_run(tiny_config(tmp_path / "coarse", image_size=192), coarse)
    with pytest.raises(ConfigError, match="stride, 128"):
        prepare_run(tiny_config(tmp_path / "fine", image_size=192), model)


def test_an_output_path_that_is_a_file_is_refused_before_data_is_read(tmp_path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot use .*taken.* as the output folder"):
        train_single_shot_faces("faceboxes", tmp_path / "no_such_data", tiny_config(blocker))


def test_a_training_set_without_a_valid_face_is_refused(tmp_path) -> None:
    """WIDER FACE flags some faces invalid; a run whose images hold only those learns nothing."""
    root = tmp_path / "widerface"
    (root / "WIDER_train" / "images" / "0--Parade").mkdir(parents=True)
    (root / "WIDER_train" / "images" / "0--Parade" / "a.jpg").write_bytes(b"")
    (root / "wider_face_split").mkdir()
    (root / "wider_face_split" / "wider_face_train_bbx_gt.txt").write_text(
        "0--Parade/a.jpg\n1\n10 10 50 50 0 0 0 1 0 0\n"  # one face, flagged invalid
    )
    with pytest.raises(DatasetError, match="none of the 1 training images .* has a valid face"):
        widerface_training_set(root, 128, (104.0, 117.0, 123.0), seed=0)


def test_an_epoch_where_no_face_matches_an_anchor_is_refused(tmp_path, synthetic_training_set) -> None:
    """6 px faces at 128 px: no anchor (32 px and up) overlaps one enough to learn it, so the loss
    would be 0.000 and the run would teach nothing."""
    dataset = synthetic_training_set(2, size=128, face_px=(4, 8))
    torch.manual_seed(0)
    with pytest.raises(DatasetError, match="no face of the 2 training images matched an anchor in epoch 0"):
        train_single_shot(create_model("faceboxes"), dataset, tiny_config(tmp_path / "run"))
    assert not list((tmp_path / "run").glob("*.pth"))


def test_training_stops_at_the_first_non_finite_loss_keeping_the_last_good_checkpoint(
    tmp_path, synthetic_training_set
) -> None:
    """lr 1e10: the first step's loss is finite (the weights grow huge but finite and epoch 0 is
    checkpointed); the next loss is NaN."""
    dataset = synthetic_training_set(2, size=128, face_px=(30, 60))
    out = tmp_path / "run"
    torch.manual_seed(0)
    with pytest.raises(TrainingDivergedError) as info:
        train_single_shot(create_model("faceboxes"), dataset, tiny_config(out, lr=1e10))
    message = str(info.value)
    assert "\n" not in message
    assert "epoch 1, step 1: the loss is nan" in message and "last.pth keeps epoch 0" in message
    kept = load_checkpoint(out / "last.pth")  # refuses non-finite tensors, so it is finite
    assert kept["epoch"] == 0
    assert not (out / "final.pth").exists()


def test_weights_made_non_finite_by_the_last_step_are_never_saved(tmp_path, synthetic_training_set) -> None:
    dataset = synthetic_training_set(2, size=128, face_px=(30, 60))
    out = tmp_path / "run"
    torch.manual_seed(0)
    with pytest.raises(TrainingDivergedError, match="epoch 0, step 1: the weights hold NaN or inf"):
        train_single_shot(create_model("faceboxes"), dataset, tiny_config(out, lr=3e38, epochs=1))
    assert not list(out.glob("*.pth"))


def test_an_unknown_augmentation_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="augment must be one of faceboxes, small_faces, got 'mixup'"):
        tiny_config(tmp_path, augment="mixup")


def test_small_face_augmentation_mosaics_the_sets_own_images(data_dir) -> None:
    """With ``small_faces`` a sample may hold faces of several training images (its mosaics draw
    the set's other images), is reproducible, and its faces are smaller than FaceBoxes' crops."""
    root = data_dir / "widerface"
    preprocessing = create_model("faceboxes").input_preprocessing
    small = widerface_training_set(root, 256, preprocessing, seed=0, max_images=16, augment="small_faces")
    plain = widerface_training_set(root, 256, preprocessing, seed=0, max_images=16)
    assert torch.equal(small[3][0], small[3][0]) and torch.equal(small[3][1], small[3][1])
    counts = [len(small[i][1]) for i in range(16)]
    assert any(count > len(boxes) for count, boxes in zip(counts, small.boxes)), counts

    def median_height(dataset) -> float:
        heights = torch.cat([dataset[i][1][:, 3] - dataset[i][1][:, 1] for i in range(16)])
        return float(heights.median())

    assert median_height(small) < 0.8 * median_height(plain)


def test_resuming_with_other_settings_is_refused(tmp_path, synthetic_training_set) -> None:
    """A run resumed with another input size would not be the run it continues."""
    dataset = synthetic_training_set(4, size=128)
    torch.manual_seed(0)
    out = tmp_path / "run"
    train_single_shot(create_model("faceboxes"), dataset, tiny_config(out, image_size=128, epochs=1))
    with pytest.raises(ConfigError, match=r"was trained with image_size=128; resume with the same settings"):
        train_single_shot(
            create_model("faceboxes"), dataset, tiny_config(out, image_size=256, epochs=2), resume=True
        )
    train_single_shot(
        create_model("faceboxes"), dataset, tiny_config(out, image_size=128, epochs=2), resume=True
    )
