"""The ``face_embedding`` recipe: a face embedding network (MobileFaceNet) trained on identity
folders with a margin head (ArcFace, CosFace or plain softmax cross-entropy), on a teacher's
embeddings of face crops (distillation), or on both at once (a weighted sum).

Distillation loss: ``1 - cos(student(crop), teacher - centre)``, the teacher's vector less the
mean of the set's (:func:`~edgevision.training.embedding_data.teacher_centre`: dlib's raw
vectors share a common part that would otherwise be most of what is learnt; a student distilled
on them scored 74% on ORL 31-40, its embeddings all within 2e-5 of one direction). Cosine,
not MSE, because only directions matter on both sides: dlib compares its descriptors by Euclidean
distance, and they are of nearly one length (1.3-1.6 on the WIDER faces we looked at), where
``|a - b|^2 = |a|^2 + |b|^2 - 2 |a| |b| cos`` ranks pairs as the cosine does; our verification
compares embeddings by cosine, and their norm is free, so an MSE would spend capacity matching a
length nothing uses.

Weight of the distillation term (``distill_weight``, 20 by default): its gradient with respect
to the embedding ``e`` is ``(cos * e/|e| - t) / |e|``, divided by the norm, which the embedding's
BN makes ~sqrt(128) ~ 11 at the start; so at weight 1 it learns slowly (1 - cos went from 0.99 to
0.80 in 12 SGD steps on 7 real crops, to 0.24 at weight 20 and 0.13 at 50, noisier). Beside
ArcFace (s = 64), whose gradient was ~50 times the unweighted term's at the start (MobileFaceNet,
16 ORL faces and 7 WIDER crops), a weight of this order also keeps the two terms comparable.

The margin head is training-only: ``final.pth`` holds the embedding network alone (it loads with
``create_model(name, weights=...)``); ``last.pth`` holds the head too, for ``resume``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgevision.data.face_augment import FaceAugment
from edgevision.data.identity_folders import IdentityFolders
from edgevision.data.io import check_output_dir
from edgevision.errors import ConfigError, EdgeVisionWarning
from edgevision.models import create_model
from edgevision.models.checkpoint import load_checkpoint
from edgevision.recognition.alignment import face_crop_input
from edgevision.recognition.arcface import margin_head
from edgevision.recognition.teacher_set import load_teacher_set
from edgevision.training.config import TrainConfig, check_input_size
from edgevision.training.embedding_data import PairedSets, TeacherCrops, collate_embedding
from edgevision.training.loop import fit
from edgevision.training.recipes import register_recipe
from edgevision.training.schedules import sgd_warmup_steps

# Where TrainConfig's (a detector's) defaults do not suit: the aligned 112 px faces, InsightFace's
# SGD learning rate (0.1; momentum 0.9 and weight decay 5e-4 are TrainConfig's too), and a run
# sized for a CPU on identity folders of ORL's size: 30 epochs (about 2 min each for 300 faces on
# two busy cores), lr 10x lower at 20 and 26. A teacher set of thousands of crops takes fewer.
EMBEDDING_DEFAULTS = {
    "image_size": 112,
    "batch_size": 64,
    "epochs": 30,
    "lr": 0.1,
    "warmup_epochs": 1.0,
    "milestones": (20, 26),
}


class MarginTrainer(nn.Module):
    """The embedding network and, when training on identities, its margin head.

    ``forward(images (B, 3, S, S), labels (B,))`` -> ``(embeddings (B, D), logits (L, C))`` where
    the ``L`` rows are those with a label (``>= 0``; -1 marks a teacher crop); logits are None
    without a head. One forward for both kinds of sample, so that DDP sees one per step.
    """

    def __init__(self, embedder: nn.Module, head: nn.Module | None) -> None:
        super().__init__()
        self.embedder = embedder
        self.head = head

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        embeddings = self.embedder(images)
        if self.head is None:
            return embeddings, None
        labelled = labels >= 0
        return embeddings, self.head(embeddings[labelled], labels[labelled])


class EmbeddingObjective:
    """Cross-entropy of the margin head's logits (named after the head) on identity images and
    ``distill_weight * (1 - cos(embedding, target))`` on teacher crops, each a batch mean."""

    def __init__(self, head_name: str, distill_weight: float = 1.0) -> None:
        self.head_name = head_name
        self.distill_weight = distill_weight

    def __call__(self, net: nn.Module, batch: tuple) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        images, labels, targets = batch
        embeddings, logits = net(images, labels)
        losses = {}
        if logits is not None:
            losses[self.head_name] = F.cross_entropy(logits, labels[labels >= 0])
        if targets is not None:
            taught = labels < 0
            cosine = F.cosine_similarity(embeddings[taught], targets[taught], dim=1)
            losses["distill"] = self.distill_weight * (1 - cosine).mean()
        return losses, {}


@register_recipe("face_embedding", config_defaults=EMBEDDING_DEFAULTS)
def train_face_embedding(
    model_name: str,
    data: Path | None,
    config: TrainConfig,
    *,
    resume: bool = False,
    model_options: Mapping[str, Any] | None = None,
    distill: Path | None = None,
    people: str | None = None,
    crops: bool = False,
) -> Path:
    """Train embedding network ``model_name`` on the identity folders ``data``
    (:class:`IdentityFolders`: ``people`` selects whom, ``crops`` says the images are face crops
    of any size rather than aligned faces), on the teacher set ``distill``, or on both; returns
    the final weights' path. The options, the input size, ``--init`` weights (in
    ``model_options``) and the output folder are checked before any data is read.

    Raises:
        ConfigError: neither data nor a teacher set, or identity options without data.
        DatasetError: unusable identity folders or teacher set.
    """
    if data is None and distill is None:
        raise ConfigError(
            f"training {model_name} needs --data DIR (identity folders), --distill SET.npz, or both"
        )
    if data is None and (
        people is not None or crops or config.margin is not None or config.scale is not None
    ):
        raise ConfigError(
            "--people, --crops, --margin and --scale are options of the identity data: give --data"
        )
    torch.manual_seed(config.seed)  # the initial weights
    model = create_model(model_name, **(model_options or {}))
    check_input_size(config, model)
    check_output_dir(config.out_dir, "--out")
    size = config.image_size
    with torch.no_grad():
        embedding_size = model.eval()(torch.zeros(1, 3, size, size)).shape[1]
    augment = FaceAugment()
    preprocessing = model.input_preprocessing
    sets = []
    if data is not None:
        face_input = face_crop_input if crops else None
        identities = IdentityFolders(
            data,
            preprocessing,
            people=people,
            face_input=face_input,
            augment=augment,
            seed=config.seed,
            size=size,
        )
        if identities.skipped:
            warnings.warn(
                f"skipped {len(identities.skipped)} unreadable image(s) in {data}, "
                f"e.g. {identities.skipped[0]}",
                EdgeVisionWarning,
                stacklevel=2,
            )
        if resume:
            _check_same_people(Path(config.out_dir) / "last.pth", identities.classes)
        config.extra["classes"] = identities.classes
        sets.append(identities)
    if distill is not None:
        teachers = TeacherCrops(load_teacher_set(distill), preprocessing, augment, config.seed)
        if teachers.embedding_size != embedding_size:
            raise ConfigError(
                f"{distill} holds {teachers.embedding_size}-d teacher embeddings; "
                f"{model_name}'s are {embedding_size}-d"
            )
        sets.append(teachers)
    dataset = PairedSets(*sets) if len(sets) == 2 else sets[0]
    head = None
    if data is not None:
        given = {"m": config.margin, "s": config.scale}
        options = {key: value for key, value in given.items() if value is not None}
        head = margin_head(config.margin_loss, embedding_size, len(identities.classes), **options)
    trainer = MarginTrainer(model, head)
    optimizer, schedule = sgd_warmup_steps(trainer.parameters(), config)
    objective = EmbeddingObjective(config.margin_loss, config.distill_weight)
    return fit(
        trainer,
        dataset,
        objective,
        optimizer,
        schedule,
        config,
        collate=collate_embedding,
        resume=resume,
        deployed=model,
    )


def _check_same_people(last: Path, classes: list[str]) -> None:
    """Refuse to resume a run on other people: the head's rows are the people of the run it
    continues, and the same number of others would load without a complaint.

    Raises:
        ConfigError: ``last`` was trained on other people (nothing is checked when it is absent:
            resuming then fails with its own message).
    """
    if not last.is_file():
        return
    trained = load_checkpoint(last).get("config", {}).get("extra", {}).get("classes")
    if trained is not None and trained != classes:
        shown = ", ".join(trained[:3]) + (", ..." if len(trained) > 3 else "")
        raise ConfigError(
            f"{last} was trained on {len(trained)} other people ({shown}); resume with the same --people"
        )
