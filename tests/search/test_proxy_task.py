"""The proxy task on a tiny synthetic patch set: finite accuracy, determinism per seed, the child's
true parameter count, pickling without the data, and a diverging child raising."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from edgevision.data.face_patches import FacePatches, save_face_patches
from edgevision.errors import ConfigError, TrainingDivergedError
from edgevision.layers.nas_ops import Block, CellGenotype, Genotype
from edgevision.models.nasnet import NASNET_A
from edgevision.search import proxy_task
from edgevision.search.proxy_task import ProxyTask, build_child

# Two blocks per cell keep the child small: the tests train it for a few steps only.
TINY = Genotype(
    normal=CellGenotype(
        (Block((0, 1), ("sep_conv_3x3", "identity")), Block((2, 0), ("max_pool_3x3", "conv_1x1"))), (1, 3)
    ),
    reduction=CellGenotype(
        (Block((0, 1), ("avg_pool_3x3", "sep_conv_3x3")), Block((2, 1), ("identity", "max_pool_3x3"))), (3,)
    ),
)


def synthetic_patches(count: int, seed: int) -> FacePatches:
    """ "Faces" are a bright disc on dark noise, "non-faces" dark noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (count, 32, 32, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 64
    labels = np.arange(count, dtype=np.uint8) % 2
    images[labels == 1] = np.where(disc[..., None], 220, images[labels == 1]).astype(np.uint8)
    provenance = {"format_version": 1, "split": "synthetic"}
    return FacePatches(
        images, labels, np.zeros((count, 4), np.int32), np.zeros(count, np.int32), ("x",), provenance
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("patches")
    save_face_patches(synthetic_patches(64, 0), folder / "train.npz")
    save_face_patches(synthetic_patches(32, 1), folder / "val.npz")
    return folder / "train.npz", folder / "val.npz"


@pytest.fixture(scope="module")
def task(files) -> ProxyTask:
    return ProxyTask(*files, epochs=2, train_size=32, val_size=32, batch=16)


def test_evaluate_is_finite_deterministic_and_counts_the_child(task: ProxyTask) -> None:
    first = task.evaluate(TINY.to_dict(), 7)
    again = task.evaluate(TINY.to_dict(), 7)
    assert 0.0 <= first["accuracy"] <= 1.0 and math.isfinite(first["train_seconds"])
    assert first["accuracy"] * 32 == round(first["accuracy"] * 32)  # a fraction of the 32 patches
    assert {k: v for k, v in first.items() if k != "train_seconds"} == {
        k: v for k, v in again.items() if k != "train_seconds"
    }
    assert first["params"] == sum(p.numel() for p in build_child(TINY).parameters())
    assert torch.get_num_threads() >= 1  # evaluate restores the caller's thread count


def test_trial_seed_changes_the_run(task: ProxyTask, monkeypatch) -> None:
    """The seed reaches the initialisation: two seeds give different trained weights."""
    trained = []
    monkeypatch.setattr(proxy_task, "_accuracy", lambda model, *a: trained.append(model) or 0.5)
    task.evaluate(TINY.to_dict(), 0)
    task.evaluate(TINY.to_dict(), 1)
    first, second = (next(m.cells[0].parameters()) for m in trained)
    assert not torch.equal(first, second)


def test_learns_the_synthetic_task(files) -> None:
    """A disc against noise is learnt: far above chance on held-out patches."""
    task = ProxyTask(*files, epochs=4, train_size=64, val_size=32, batch=16, lr=0.05)
    assert task.evaluate(TINY.to_dict(), 0)["accuracy"] >= 0.9


def test_pickles_without_the_data(task: ProxyTask) -> None:
    task._load()
    blob = pickle.dumps(task)
    assert len(blob) < 2000  # paths and options, not the arrays
    assert (
        pickle.loads(blob).evaluate(TINY.to_dict(), 3)["accuracy"]
        == task.evaluate(TINY.to_dict(), 3)["accuracy"]
    )


def test_madds_are_the_childs_at_the_input_size(task: ProxyTask) -> None:
    from edgevision.models.complexity import count_madds

    assert task.evaluate(NASNET_A.to_dict(), 0)["madds"] == count_madds(build_child(NASNET_A), (16, 16))


def test_nan_loss_raises(task: ProxyTask, monkeypatch) -> None:
    def poisoned(genotype: Genotype, cells: int, filters: int) -> torch.nn.Module:
        model = build_child(genotype, cells, filters)
        torch.nn.init.constant_(model.classifier[-1].bias, float("nan"))
        return model

    monkeypatch.setattr(proxy_task, "build_child", poisoned)
    with pytest.raises(TrainingDivergedError, match="nan at step 0"):
        task.evaluate(TINY.to_dict(), 0)


def test_bad_inputs_refused(files) -> None:
    with pytest.raises(ConfigError, match="lr"):
        ProxyTask(*files, lr=float("nan"))
    with pytest.raises(ConfigError, match="train_size"):
        ProxyTask(*files, train_size=0)
    with pytest.raises(ConfigError, match="1000 patches asked for"):
        ProxyTask(*files, train_size=1000)
    task = ProxyTask(*files, train_size=32, val_size=32)
    with pytest.raises(ConfigError, match="unknown ops"):
        task.evaluate(
            {
                "normal": {"blocks": [{"inputs": [0, 1], "ops": ["conv_9x9", "identity"]}], "concat": [2]},
                "reduction": TINY.reduction.to_dict(),
            },
            0,
        )
    with pytest.raises(ConfigError, match="genotype lacks reduction"):
        task.evaluate({"normal": {}}, 0)


def test_train_builds_the_size_asked_and_returns_the_model_it_measured(files) -> None:
    from edgevision.search.proxy_task import _accuracy

    task = ProxyTask(*files, train_size=32, val_size=32, epochs=1, cells=2, filters=4)
    model, metrics = task.train(TINY, seed=1)
    # N = 2, F = 4: the full model a found cell trains as, not the proxy child (N = 1, F = 8).
    assert metrics["params"] == sum(p.numel() for p in build_child(TINY, 2, 4).parameters())
    assert metrics["params"] != sum(p.numel() for p in build_child(TINY).parameters())
    assert not model.training
    x_val, y_val = task._load()[2:]
    assert _accuracy(model, x_val, y_val, 64) == metrics["accuracy"]
