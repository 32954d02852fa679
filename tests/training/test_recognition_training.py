"""Training an embedding network (the face_embedding recipe): a margin head on identity folders,
distillation against a teacher set, their pairing of mirrored crops with mirrored targets, the
weights it saves, resume, and one-line refusals of what cannot train."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgevision.data.face_augment import FaceAugment
from edgevision.data.identity_folders import IdentityFolders
from edgevision.data.paths import default_data_dir
from edgevision.data.preprocessing import FACE_RGB
from edgevision.errors import ConfigError, WeightsError
from edgevision.models import create_model
from edgevision.models.checkpoint import load_checkpoint
from edgevision.recognition.alignment import face_crop_input
from edgevision.recognition.arcface import margin_head
from edgevision.recognition.teacher_set import TeacherSet, save_teacher_set
from edgevision.training.config import TrainConfig
from edgevision.training.embedding_data import (
    PairedSets,
    TeacherCrops,
    collate_embedding,
    teacher_centre,
    teacher_target,
)
from edgevision.training.face_embedding import EmbeddingObjective, MarginTrainer, train_face_embedding

ORL = default_data_dir() / "orl_faces"
# A MobileFaceNet of the same shape of graph (stride 16, GDConv, 128-d) a hundred times cheaper,
# so that a few epochs take a second.
TINY = {
    "stem_channels": 8,
    "bottleneck_setting": ((2, 16, 1, 2), (2, 16, 1, 2), (2, 32, 1, 2)),
    "last_channels": 64,
}
needs_orl = pytest.mark.skipif(not ORL.is_dir(), reason=f"ORL faces not found at {ORL}")


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the runs are small, and the machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(out: Path, **overrides) -> TrainConfig:
    settings = dict(
        image_size=112, batch_size=10, epochs=2, lr=0.1, warmup_epochs=0, milestones=(), workers=0
    )
    return TrainConfig(out_dir=out, **{**settings, "log_every": 1, **overrides})


def synthetic_teacher_set(n: int = 8, seed: int = 0) -> TeacherSet:
    """Smooth random crops and fixed random teacher vectors, off the unit sphere (the targets
    must be normalised); a mirror's vector is near, not equal to, its crop's (cosine ~0.95), as a
    face's and its mirror's are."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 14, 14, 3)).astype(np.uint8)
    crops = np.stack([np.kron(c, np.ones((8, 8, 1), np.uint8)) for c in small])
    plain = rng.normal(size=(n, 128)).astype(np.float32) * 3
    mirrored = plain + rng.normal(size=(n, 128)).astype(np.float32)
    return TeacherSet(crops, plain, mirrored, np.array([f"crop{i}" for i in range(n)]))


def mean_loss(trainer: MarginTrainer, objective: EmbeddingObjective, batch: tuple) -> float:
    """The objective on one fixed batch, BN on the batch's statistics (as in training)."""
    trainer.train()
    with torch.no_grad():
        losses, _ = objective(trainer, batch)
    return float(sum(losses.values()))


@needs_orl
def test_arcface_on_orl_lowers_the_loss_and_saves_the_network_alone(tmp_path) -> None:
    out = tmp_path / "run"
    final = train_face_embedding(
        "mobilefacenet", ORL, config(out), model_options=TINY, people="1-5", crops=True
    )
    plain = IdentityFolders(ORL, FACE_RGB, people="1-5", face_input=face_crop_input)  # no augmentation
    batch = collate_embedding([plain[i] for i in range(len(plain))])
    objective = EmbeddingObjective("arcface")
    torch.manual_seed(0)
    untrained = MarginTrainer(create_model("mobilefacenet", **TINY), margin_head("arcface", 128, 5))
    trained = MarginTrainer(create_model("mobilefacenet", **TINY), margin_head("arcface", 128, 5))
    state = load_checkpoint(out / "last.pth")
    trained.load_state_dict(state["model"])
    # final.pth: the embedding network alone, loading strictly; the head is in last.pth only
    weights = load_checkpoint(final)
    assert not any(key.startswith("head") for key in weights) and "head.weight" in state["model"]
    model = create_model("mobilefacenet", weights=final, **TINY)
    torch.testing.assert_close(model.state_dict(), trained.embedder.state_dict(), rtol=0, atol=0)
    before, after = mean_loss(untrained, objective, batch), mean_loss(trained, objective, batch)
    assert after < 0.8 * before, (before, after)
    assert state["config"]["extra"]["classes"] == ["s1", "s2", "s3", "s4", "s5"]


def test_distillation_raises_the_cosine_to_the_teacher(tmp_path) -> None:
    teachers = synthetic_teacher_set()
    path = tmp_path / "set.npz"
    save_teacher_set(teachers, path)
    crops = TeacherCrops(teachers, FACE_RGB)  # un-augmented: the crops as they are
    batch = collate_embedding([crops[i] for i in range(len(crops))])
    torch.manual_seed(0)
    untrained = MarginTrainer(create_model("mobilefacenet", **TINY), None)
    out = tmp_path / "run"
    settings = config(out, epochs=4, batch_size=4)  # lr 0.1, distill_weight 20: the defaults
    final = train_face_embedding("mobilefacenet", None, settings, model_options=TINY, distill=path)
    trained = MarginTrainer(create_model("mobilefacenet", weights=final, **TINY), None)
    objective = EmbeddingObjective("arcface")
    before, after = mean_loss(untrained, objective, batch), mean_loss(trained, objective, batch)
    # the loss is 1 - the mean cosine: the cosine rose (by 0.20 on this seed; 0.08 is asked)
    assert after < before - 0.08, (before, after)
    assert "head.weight" not in load_checkpoint(out / "last.pth")["model"]
    # resuming it with identities (a head it has not) is refused in one line, before training
    for person in ("a", "b"):
        (tmp_path / "people" / person).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "people" / person / "0.png"), teachers.crops[0])
    with pytest.raises(WeightsError, match="does not fit the model this run trains") as info:
        more = config(out, epochs=5, batch_size=4)
        train_face_embedding(
            "mobilefacenet", tmp_path / "people", more, model_options=TINY, distill=path, resume=True
        )
    assert "\n" not in str(info.value)


def test_a_mirrored_crop_is_paired_with_the_mirrors_teacher_embedding() -> None:
    teachers = synthetic_teacher_set(n=6)
    centre = teacher_centre(teachers)
    # the mean of all twelve vectors, written out
    np.testing.assert_allclose(
        centre, (teachers.embeddings.sum(0) + teachers.embeddings_flipped.sum(0)) / 12, rtol=1e-5
    )
    for i in range(6):
        centred = teachers.embeddings[i] - centre
        np.testing.assert_allclose(
            teacher_target(teachers, i, False, centre), centred / np.linalg.norm(centred), rtol=1e-5
        )
        centred = teachers.embeddings_flipped[i] - centre
        np.testing.assert_allclose(
            teacher_target(teachers, i, True, centre), centred / np.linalg.norm(centred), rtol=1e-5
        )
    # Through the data set, with a mirror on about half the samples: each target is the one of the
    # image the student sees.
    data = TeacherCrops(teachers, FACE_RGB, FaceAugment(flip=0.5, scale=0, shift=0, brightness=0, contrast=0))
    mirrored = 0
    for epoch in range(4):
        data.set_epoch(epoch)
        for i in range(len(data)):
            image, target = data[i]
            flipped = np.array_equal(image.numpy(), FACE_RGB.network_input(teachers.crops[i][:, ::-1]))
            if not flipped:
                np.testing.assert_array_equal(image.numpy(), FACE_RGB.network_input(teachers.crops[i]))
            np.testing.assert_array_equal(target.numpy(), teacher_target(teachers, i, flipped, data.centre))
            mirrored += flipped
    assert 4 <= mirrored <= 20  # both kinds were seen


def test_identity_and_teacher_samples_share_one_batch() -> None:
    teachers = TeacherCrops(synthetic_teacher_set(n=2), FACE_RGB)
    identity = (torch.zeros(3, 112, 112), 4)
    images, labels, targets = collate_embedding([(identity, teachers[0]), (identity, teachers[1])])
    assert images.shape == (4, 3, 112, 112) and labels.tolist() == [4, -1, 4, -1]
    assert targets[0].abs().sum() == 0 and torch.equal(targets[1], teachers[0][1])
    assert collate_embedding([identity, identity])[2] is None


class FirstPixels(torch.nn.Module):
    """A stand-in embedder: the first row of channel 0, ``(B, 3, 1, D) -> (B, D)``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 0, :]


def test_the_objective_is_cross_entropy_on_labelled_rows_plus_weighted_cosine_on_taught_rows() -> None:
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(4, 5)).astype(np.float32)
    images = torch.from_numpy(np.repeat(embeddings[:, None, None, :], 3, axis=1))
    labels = torch.tensor([0, -1, 2, -1])
    targets = torch.zeros(4, 5)
    targets[[1, 3]] = torch.from_numpy(rng.normal(size=(2, 5)).astype(np.float32))
    head = margin_head("softmax", 5, 3)
    losses, _ = EmbeddingObjective("softmax", distill_weight=3.0)(
        MarginTrainer(FirstPixels(), head), (images, labels, targets)
    )
    weight, bias = head.linear.weight.detach().numpy(), head.linear.bias.detach().numpy()
    logits = embeddings[[0, 2]] @ weight.T + bias
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert losses["softmax"].item() == pytest.approx(-(log_p[0, 0] + log_p[1, 2]) / 2, rel=1e-5)
    t = targets.numpy()[[1, 3]]
    e = embeddings[[1, 3]]
    cosine = (e * t).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(t, axis=1)
    assert losses["distill"].item() == pytest.approx(3.0 * (1 - cosine).mean(), rel=1e-5)


class Indices:
    """A stand-in data set whose samples are their own index, recording set_epoch."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index


def test_paired_epochs_pass_over_the_identities_and_walk_on_through_the_teacher_crops() -> None:
    identities, teachers = Indices(3), Indices(7)
    pairs = PairedSets(identities, teachers)
    walked = []
    for epoch in range(3):
        pairs.set_epoch(epoch)
        assert identities.epoch == teachers.epoch == epoch and len(pairs) == 3
        walked.append([pairs[i] for i in range(3)])
    assert walked == [[(0, 0), (1, 1), (2, 2)], [(0, 3), (1, 4), (2, 5)], [(0, 6), (1, 0), (2, 1)]]


@needs_orl
def test_identities_and_distillation_train_together(tmp_path) -> None:
    teachers = synthetic_teacher_set(n=4)
    path = tmp_path / "set.npz"
    save_teacher_set(teachers, path)
    out = tmp_path / "run"
    settings = config(out, epochs=1, batch_size=5, distill_weight=2.0)
    train_face_embedding(
        "mobilefacenet", ORL, settings, model_options=TINY, people="1-2", crops=True, distill=path
    )
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][:-1]
    # 20 identity images and 4 crops: 20 pairs, 4 steps of 5 of each
    assert len(steps) == 4 and all({"arcface", "distill"} <= set(step) for step in steps)
    assert all(0 <= step["distill"] <= 4 for step in steps)  # 2 x (1 - cosine)


@needs_orl
def test_resume_continues_from_last_and_matches_the_uninterrupted_run(tmp_path) -> None:
    whole = train_face_embedding("mobilefacenet", ORL, config(tmp_path / "whole"), model_options=TINY,
                                 people="1-3", crops=True)  # fmt: skip
    cut = tmp_path / "cut"
    train_face_embedding(
        "mobilefacenet", ORL, config(cut, epochs=1), model_options=TINY, people="1-3", crops=True
    )
    assert load_checkpoint(cut / "last.pth")["epoch"] == 0
    resumed = train_face_embedding("mobilefacenet", ORL, config(cut), model_options=TINY, people="1-3",
                                   crops=True, resume=True)  # fmt: skip
    assert load_checkpoint(cut / "last.pth")["epoch"] == 1
    torch.testing.assert_close(load_checkpoint(resumed), load_checkpoint(whole), rtol=0, atol=1e-6)
    # a resume on other people is refused in one line, whether or not the head's shape would change
    for people in ("1-4", "2-4"):
        with pytest.raises(
            ConfigError, match="trained on 3 other people .*s1, s2, s3.*same --people"
        ) as info:
            train_face_embedding(
                "mobilefacenet",
                ORL,
                config(cut, epochs=3),
                model_options=TINY,
                people=people,
                crops=True,
                resume=True,
            )
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"margin": math.nan}, "margin must be a finite number"),
        ({"margin": 2.0}, "margin must be a finite number in [0, 1.5708]"),
        ({"scale": math.inf}, "scale must be a finite number"),
        ({"scale": 0.0}, "scale must be a finite number in (0, 1024]"),
        ({"distill_weight": -1.0}, "distill_weight must be positive"),
        ({"distill_weight": math.nan}, "distill_weight must be a finite number"),
        ({"margin_loss": "triplet"}, "loss must be one of arcface, cosface, softmax"),
        ({"margin_loss": "softmax", "margin": 0.3}, "softmax has no margin or scale"),
    ],
)
def test_bad_numbers_are_refused_when_the_config_is_made(tmp_path, overrides, words) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, **overrides)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_teacher_set_of_another_size_is_refused(tmp_path) -> None:
    path = tmp_path / "set.npz"
    save_teacher_set(synthetic_teacher_set(n=4), path)
    narrow = {**TINY, "embedding_size": 64}
    with pytest.raises(ConfigError, match="holds 128-d teacher embeddings; mobilefacenet's are 64-d"):
        train_face_embedding(
            "mobilefacenet", None, config(tmp_path / "run"), model_options=narrow, distill=path
        )
    assert not (tmp_path / "run").exists()
