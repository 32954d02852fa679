"""The proxy task a searched child network is trained on: face / non-face patches, one CPU thread.

The papers' small-compute setting (NASNet Sec. 4.1, AmoebaNet Sec. 4): each child is built with
N = 1 cell per stack and F = 8 filters and trained for a few epochs from scratch; its accuracy on
held-out data is the search's reward. Here the data are WIDER FACE patches
(:mod:`edgevision.data.face_patches`: training images for training, dev-val images for
validation) and a child must train and validate in a couple of seconds on one thread, so that
hundreds of children fit in a search on a laptop. The patches are cut at 32x32 and by default
shown to the child at 16x16 (area-downsampled), which makes a child four times cheaper to train;
``input_size`` sets it (``benchmarks/search_proxy.py`` measures the time and the accuracy
spread across architectures against seed noise).

:class:`ProxyTask` is the picklable ``evaluate(arch_json, trial_seed)`` callable the search runner
ships to its workers. It holds the two patch file paths; the arrays are loaded lazily in each
process and never pickled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgevision.data.face_patches import load_face_patches
from edgevision.data.preprocessing import IMAGENET_RGB
from edgevision.errors import ConfigError, TrainingDivergedError
from edgevision.layers.nas_ops import Genotype
from edgevision.models import create_model
from edgevision.models.complexity import count_madds, count_params
from edgevision.validation import check_integer, check_number

# The child: N = 1 cell per stack, F = 8 (the papers' small-compute setting), CIFAR stem.
CHILD_MODEL = "nasnet"
CHILD_CELLS, CHILD_FILTERS = 1, 8
RECALIBRATION_PATCHES = 256  # training patches BN statistics are recomputed on after training


def build_child(genotype: Genotype, cells: int = CHILD_CELLS, filters: int = CHILD_FILTERS) -> nn.Module:
    """The two-class network of ``genotype`` with N = ``cells``, F = ``filters`` (untrained); the
    defaults are the search's proxy child, larger ones the full model a found cell trains as."""
    return create_model(CHILD_MODEL, genotype=genotype, num_cells=cells, filters=filters, num_classes=2)


class ProxyTask:
    """Train a child on face / non-face patches and return its validation accuracy.

    Args:
        train_file, val_file: patch sets (``.npz`` from :func:`~edgevision.data.face_patches.
            cached_face_patches`), the training and the validation split.
        epochs: passes over the training subset.
        train_size: training patches used (a class-balanced subset fixed by ``data_seed``, the
            same for every child, so children differ by architecture and trial seed only).
        val_size: validation patches (likewise fixed); ``None``: all.
        batch: mini-batch size.
        lr: initial learning rate of SGD with Nesterov momentum 0.9, cosine-annealed to 0 per step
            (no warm-up: too few steps for one).
        weight_decay: L2 on every parameter.
        input_size: side the patches are resized to (area) before the child sees them.
        data_seed: draws the fixed training / validation subsets.
        cells, filters: N and F of the network trained (the proxy child's by default).

    ``evaluate(arch_json, trial_seed)`` -> ``{"accuracy": [0, 1], "params": int, "madds": int
    (at input_size), "train_seconds": s (build, train and validate)}``. The trial seed sets the
    weights' initialisation, the batch order and the flips; torch runs on one thread.

    Raises (from ``evaluate``):
        ConfigError: ``arch_json`` is not a valid genotype.
        TrainingDivergedError: the loss became NaN or infinite.
    """

    def __init__(
        self,
        train_file: str | Path,
        val_file: str | Path,
        *,
        epochs: int = 3,
        train_size: int | None = 256,
        val_size: int | None = 512,
        batch: int = 32,
        lr: float = 0.1,
        weight_decay: float = 5e-4,
        input_size: int = 16,
        data_seed: int = 0,
        cells: int = CHILD_CELLS,
        filters: int = CHILD_FILTERS,
    ) -> None:
        self.train_file, self.val_file = Path(train_file), Path(val_file)
        self.epochs = check_integer("epochs", epochs, 1)
        self.train_size = None if train_size is None else check_integer("train_size", train_size, 2)
        self.val_size = None if val_size is None else check_integer("val_size", val_size, 2)
        self.batch = check_integer("batch", batch, 1)
        self.lr = check_number("lr", lr, 0.0, 10.0, low_open=True)
        self.weight_decay = check_number("weight_decay", weight_decay, 0.0, 1.0)
        self.input_size = check_integer("input_size", input_size, 8)
        self.data_seed = check_integer("data_seed", data_seed, 0)
        self.cells = check_integer("cells", cells, 1)
        self.filters = check_integer("filters", filters, 2)
        self._data: tuple[torch.Tensor, ...] | None = None
        self._load()  # bad files fail here, before any search starts

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}

    def _load(self) -> tuple[torch.Tensor, ...]:
        if self._data is None:
            rng = np.random.default_rng(self.data_seed)
            train = _tensors(load_face_patches(self.train_file), self.train_size, rng, self.input_size)
            val = _tensors(load_face_patches(self.val_file), self.val_size, rng, self.input_size)
            self._data = (*train, *val)
        return self._data

    def evaluate(self, arch_json: Any, trial_seed: int) -> dict[str, float]:
        """Train and validate the child ``Genotype.from_dict(arch_json)`` on one thread; see the
        class."""
        genotype = Genotype.from_dict(arch_json)  # a one-line ConfigError on malformed data
        return self.train(genotype, trial_seed, threads=1)[1]

    def train(
        self,
        genotype: Genotype,
        seed: int,
        threads: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[nn.Module, dict[str, float]]:
        """The trained network of ``genotype`` (eval mode) and its metrics (as :meth:`evaluate`'s),
        on ``threads`` torch threads (None: torch's setting); ``progress(step, steps)`` after each
        optimiser step."""
        start = time.perf_counter()
        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        try:
            x_train, y_train, x_val, y_val = self._load()
            torch.manual_seed(seed)
            model = build_child(genotype, self.cells, self.filters).to(memory_format=torch.channels_last)
            # Kaiming fan-out on a 2-way classifier starts the loss near 7 (logits of several
            # units); from zero it starts at log 2 and none of the few steps is spent undoing it.
            nn.init.zeros_(model.classifier[-1].weight)
            self._train(model, x_train, y_train, seed, progress)
            _recalibrate_bn(model, x_train[:RECALIBRATION_PATCHES], self.batch * 4)
            accuracy = _accuracy(model, x_val, y_val, self.batch * 8)
            madds = count_madds(model, (self.input_size, self.input_size))
        finally:
            torch.set_num_threads(before)
        metrics = {
            "accuracy": accuracy,
            "params": count_params(model),
            "madds": madds,
            "train_seconds": time.perf_counter() - start,
        }
        return model.eval(), metrics

    def _train(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        seed: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        generator = torch.Generator().manual_seed(seed)
        steps_per_epoch = math.ceil(len(y) / self.batch)
        total = self.epochs * steps_per_epoch
        optimizer = torch.optim.SGD(
            model.parameters(), lr=self.lr, momentum=0.9, nesterov=True, weight_decay=self.weight_decay
        )
        model.train()
        step = 0
        for _ in range(self.epochs):
            order = torch.randperm(len(y), generator=generator)
            for i in range(0, len(y), self.batch):
                index = order[i : i + self.batch]
                inputs = x[index]
                flip = torch.rand(len(index), generator=generator) < 0.5
                inputs = torch.where(flip[:, None, None, None], inputs.flip(3), inputs)
                for group in optimizer.param_groups:  # cosine annealing, per step
                    group["lr"] = 0.5 * self.lr * (1 + math.cos(math.pi * step / total))
                loss = F.cross_entropy(model(inputs), y[index])
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(f"the child's loss became {loss.item()} at step {step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if progress is not None:
                    progress(step, total)


def _tensors(
    patches: Any, size: int | None, rng: np.random.Generator, input_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-balanced random subset of ``size`` patches (all when ``None``) as normalised
    ``(n, 3, input_size, input_size)`` channels-last float32 inputs and int64 labels."""
    labels = patches.labels
    if size is None:
        chosen = np.arange(len(labels))
    else:
        per_class = size // 2
        chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in (0, 1)])
        if len(chosen) < 2 * per_class:
            raise ConfigError(f"{size} patches asked for, the file has {len(labels)}")
    images = torch.from_numpy(patches.images[chosen]).permute(0, 3, 1, 2).float()
    if images.shape[-1] != input_size:
        images = F.interpolate(images, size=(input_size, input_size), mode="area")
    mean = torch.tensor(IMAGENET_RGB.mean).view(1, 3, 1, 1)  # the child's declared preprocessing
    std = torch.tensor(IMAGENET_RGB.std).view(1, 3, 1, 1)
    images = ((images - mean) / std).contiguous(memory_format=torch.channels_last)
    return images, torch.from_numpy(labels[chosen].astype(np.int64))


@torch.no_grad()
def _recalibrate_bn(model: nn.Module, x: torch.Tensor, batch: int) -> None:
    """Replace the BN running statistics by the trained network's own over ``x``.

    After a few dozen steps the running averages (momentum 0.1) still mix in the statistics of
    the early, very different weights, and eval-mode accuracy can fall to chance while the
    train-mode one is perfect; recomputing them with the final weights (a cumulative average,
    as one-shot NAS recalibrates BN for each sampled child) removes that lag.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batches below
    model.train()
    for i in range(0, len(x), batch):
        model(x[i : i + batch])


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(y), batch)
    )
    return correct / len(y)
