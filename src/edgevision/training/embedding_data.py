"""What an embedding network trains on: labelled identity images, a teacher's embeddings of face
crops (distillation), or both, one batch of each per step; and how their samples are batched."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgevision.data.face_augment import FaceAugment
from edgevision.data.identity_folders import IdentityFolders
from edgevision.data.preprocessing import Preprocessing
from edgevision.errors import DatasetError
from edgevision.recognition.teacher_set import TeacherSet

# A sample: (network input, label) from identity folders, or (network input, teacher target).
EmbeddingSample = tuple[torch.Tensor, int] | tuple[torch.Tensor, torch.Tensor]


def teacher_centre(teachers: TeacherSet) -> np.ndarray:
    """The mean of a set's teacher embeddings, its faces' and their mirrors', ``(D,)`` float64.

    A teacher's embeddings need not be centred: dlib's share a large common part (two different
    WIDER faces are at cosine 0.85 on average), so a student taught their raw directions learns
    mostly that common part, and its cosine distances between people shrink to a few
    thousandths. Centred, two faces are at cosine 0.00 on average and the student learns what
    tells people apart."""
    return np.concatenate([teachers.embeddings, teachers.embeddings_flipped]).mean(0, dtype=np.float64)


def teacher_target(teachers: TeacherSet, index: int, flipped: bool, centre: np.ndarray) -> np.ndarray:
    """The teacher embedding of crop ``index`` as the student sees it (of the mirrored crop when
    ``flipped``: a face and its mirror embed differently), less ``centre``
    (:func:`teacher_centre`), at unit length: ``(D,)`` float32."""
    vector = (teachers.embeddings_flipped if flipped else teachers.embeddings)[index] - centre
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class TeacherCrops(Dataset):
    """A :class:`TeacherSet`'s aligned crops, augmented, each with its centred teacher target
    (:func:`teacher_target`, for the mirror when the augmentation mirrored it).

    Sample ``i`` of epoch ``e`` is augmented with the generator seeded by ``(seed, e, i, 1)`` (the
    1 keeps it apart from the identity images' stream of the same index).

    Raises:
        DatasetError: the set is empty, or an embedding is zero once centred.
    """

    def __init__(
        self,
        teachers: TeacherSet,
        preprocessing: Preprocessing,
        augment: FaceAugment | None = None,
        seed: int = 0,
    ) -> None:
        # TeacherSet checks its shapes and finiteness; a zero vector has no direction to learn.
        if len(teachers) == 0:
            raise DatasetError("the teacher set holds no crops")
        self.centre = teacher_centre(teachers)
        for name in ("embeddings", "embeddings_flipped"):
            if not (np.linalg.norm(getattr(teachers, name) - self.centre, axis=1) > 0).all():
                raise DatasetError(f"the teacher set's {name} hold a vector at their mean: no direction")
        self.teachers = teachers
        self.preprocessing = preprocessing
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    @property
    def embedding_size(self) -> int:
        return int(self.teachers.embeddings.shape[1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.teachers.crops)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(3, S, S)`` float32 network input and its ``(D,)`` unit teacher target."""
        image, flipped = self.teachers.crops[index], False
        if self.augment is not None:
            image, flipped = self.augment(image, np.random.default_rng([self.seed, self.epoch, index, 1]))
        target = teacher_target(self.teachers, index, flipped, self.centre)
        return torch.from_numpy(self.preprocessing.network_input(image)), torch.from_numpy(target)


class PairedSets(Dataset):
    """Identity images and teacher crops together, one of each per item, so each step has as
    many of one as of the other. An epoch is a pass over the identities (the data fine-tuned on;
    the teacher set is a regulariser, often 20 times larger): item ``i`` of epoch ``e`` pairs
    identity sample ``i`` with teacher sample ``(e * n + i) mod m`` (``n`` identities, ``m``
    crops), so successive epochs walk on through the teacher set."""

    def __init__(self, identities: IdentityFolders, teachers: TeacherCrops) -> None:
        self.identities, self.teachers = identities, teachers
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.identities.set_epoch(epoch)
        self.teachers.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.identities)

    def __getitem__(self, index: int) -> tuple[EmbeddingSample, EmbeddingSample]:
        crop = (self.epoch * len(self.identities) + index) % len(self.teachers)
        return self.identities[index], self.teachers[crop]


def collate_embedding(items: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Samples (or :class:`PairedSets` pairs of them) -> ``(images (B, 3, S, S), labels (B,)
    int64, targets (B, D) or None)``: label -1 marks a teacher crop, whose row of ``targets`` is
    its target; identity images' rows are zero. ``targets`` is None without teacher crops."""
    samples = [s for item in items for s in (item if isinstance(item[0], tuple) else (item,))]
    images = torch.stack([image for image, _ in samples])
    labels = torch.tensor([-1 if isinstance(y, torch.Tensor) else y for _, y in samples], dtype=torch.int64)
    vectors = [y for _, y in samples if isinstance(y, torch.Tensor)]
    if not vectors:
        return images, labels, None
    targets = torch.zeros(len(samples), vectors[0].numel())
    targets[labels < 0] = torch.stack(vectors)
    return images, labels, targets
