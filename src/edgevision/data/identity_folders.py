"""Identity folders: a labelled face data set laid out as one folder per person (ORL's ``s1`` ...
``s40``, CASIA-WebFace's numbered folders), each holding that person's images in any format
:func:`edgevision.data.io.read_image` reads (jpg, png, pgm, ...).

Classes are the sub-folders in natural sort order (``s2`` before ``s10``); a person's label is
their position among the selected people. Files whose suffix is not an image's are ignored; grey
images are read as three equal channels.

Training takes aligned faces: either images that already are aligned ``size`` x ``size`` crops,
or face crops turned into the network's input by an injected ``face_input`` (the recogniser's
``face_crop_input``: scale and pad, no detection). Detecting and aligning faces in full photos is
not done here: align them first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from edgevision.data.face_augment import FaceAugment
from edgevision.data.io import IMAGE_SUFFIXES, read_image, read_image_size
from edgevision.data.preprocessing import Preprocessing
from edgevision.errors import ConfigError, DatasetError, InputFileError

FaceInput = Callable[[np.ndarray], np.ndarray]  # (H, W, 3) uint8 BGR face crop -> (S, S, 3) uint8 BGR


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers: ``s2 < s10``, ``img9 < img10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def select_people(names: Sequence[str], spec: str | None) -> list[str]:
    """The people ``spec`` selects from ``names`` (in natural order), kept in that order.

    ``spec`` is comma-separated tokens, each a 1-based position (``7``), an inclusive range of
    positions (``1-30``) or a folder name (``alice``); a token of digits is always a position,
    even where a folder has that name (numbered folders are selected by position). None selects
    everyone. A person named twice is selected once.

    Raises:
        ConfigError: a token is empty, a range runs backwards, a position is outside
            ``1..len(names)``, or a name is not a folder.
    """
    if spec is None:
        return list(names)
    chosen: set[int] = set()
    for token in (t.strip() for t in spec.split(",")):
        span = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if span:
            first, last = int(span[1]), int(span[2] or span[1])
            if first > last:
                raise ConfigError(f"--people range {token!r} runs backwards; write {last}-{first}")
            if first < 1 or last > len(names):
                raise ConfigError(
                    f"--people {token!r} is outside positions 1-{len(names)} (the {len(names)} folders)"
                )
            chosen.update(range(first - 1, last))
        elif token in names:
            chosen.add(names.index(token))
        else:
            what = "an empty entry" if not token else f"no folder {token!r}"
            raise ConfigError(f"--people {spec!r} has {what}; give positions (1-30) or folder names")
    return [names[i] for i in sorted(chosen)]


class IdentityFolders(Dataset):
    """Face images labelled by their folder, augmented per sample.

    Sample ``i`` of epoch ``e`` is augmented with the generator seeded by ``(seed, e, i)``: a run
    and its resumption see the same stream.

    Args:
        root: the folder of per-person folders.
        preprocessing: what turns a crop into the network's input.
        people: a :func:`select_people` spec (None: everyone).
        face_input: maps each (face crop) image to a ``size`` x ``size`` input; None: the images
            must already be aligned ``size`` x ``size`` faces (checked from their headers).
        augment: the augmentation (None: none).
        seed: the augmentation's seed.
        size: the side of the aligned faces, px.

    Raises:
        DatasetError: ``root`` is not a folder, holds fewer than 2 people (after ``people``), or a
            person has no readable image; an image is not ``size`` x ``size`` without
            ``face_input``. Only image headers are read here.
        ConfigError: a bad ``people`` spec.
    """

    def __init__(
        self,
        root: Path,
        preprocessing: Preprocessing,
        *,
        people: str | None = None,
        face_input: FaceInput | None = None,
        augment: FaceAugment | None = None,
        seed: int = 0,
        size: int = 112,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(
                f"identity folder {root} {'is not a folder' if root.exists() else 'does not exist'}"
            )
        folders = sorted((p.name for p in root.iterdir() if p.is_dir()), key=natural_key)
        self.classes = select_people(folders, people)
        if len(self.classes) < 2:
            raise DatasetError(
                f"{root} has {len(self.classes)} person folder(s) selected; identities need at least 2"
            )
        self.samples: list[tuple[Path, int]] = []
        self.skipped: list[Path] = []  # files with an image suffix whose header is not readable
        for label, name in enumerate(self.classes):
            readable = []
            for path in sorted((root / name).iterdir(), key=lambda p: natural_key(p.name)):
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                    continue
                try:
                    width, height = read_image_size(path)
                except InputFileError:
                    self.skipped.append(path)
                    continue
                if face_input is None and (width, height) != (size, size):
                    raise DatasetError(
                        f"{path} is {width}x{height}, not an aligned {size}x{size} face; "
                        "for face crops of other sizes use --crops (full photos must be aligned first)"
                    )
                readable.append((path, label))
            if not readable:
                raise DatasetError(f"person folder {root / name} has no readable image")
            self.samples += readable
        self.preprocessing = preprocessing
        self.face_input = face_input
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def face(self, index: int) -> np.ndarray:
        """Image ``index`` as the network's aligned crop, ``(size, size, 3)`` uint8 BGR, before
        augmentation."""
        image = read_image(self.samples[index][0])
        return image if self.face_input is None else self.face_input(image)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """``(3, size, size)`` float32 network input and the person's label."""
        image = self.face(index)
        if self.augment is not None:
            image, _ = self.augment(image, np.random.default_rng([self.seed, self.epoch, index]))
        return torch.from_numpy(self.preprocessing.network_input(image)), self.samples[index][1]
