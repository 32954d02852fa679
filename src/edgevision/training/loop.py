"""The training loop every model shares: ``fit(model, data, objective, optimizer, schedule, ...)``.

What a model trains on and against comes from its recipe (:mod:`edgevision.training.recipes`):
the data set, the :class:`Objective` (losses of one batch), the optimiser, the learning-rate
schedule and any epoch-end checks (hooks). The loop does the rest for all of them: data-parallel
processes started by ``torchrun`` (gloo on the CPU, NCCL on GPUs), a checkpoint every epoch
(``resume`` loses at most one epoch and reproduces the uninterrupted run exactly), rich progress,
a JSON-lines loss log and its plot. A run stops at the first NaN or inf loss, naming its epoch and
step; no checkpoint with a non-finite weight is ever written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgevision.data.io import atomic_write
from edgevision.errors import ConfigError, DatasetError, TrainingDivergedError, WeightsError
from edgevision.evaluation.plots import plot_loss_curves
from edgevision.models.checkpoint import load_checkpoint, save_checkpoint
from edgevision.training.config import TrainConfig, prepare_run


class Objective(Protocol):
    """The losses of one batch."""

    def __call__(self, net: nn.Module, batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """``net`` (the model, or its DDP wrapper) and a collated batch -> named scalar losses
        (summed for the step) and counts to total over the epoch (e.g. matched anchors)."""
        ...


# An epoch-end check: (epoch, the epoch's counts summed over every process) -> None, or raise.
EpochHook = Callable[[int, Mapping[str, int]], None]
# Fractional epoch -> learning rate.
Schedule = Callable[[float], float]


def distributed() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def fit(
    model: nn.Module,
    data: Dataset,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    config: TrainConfig,
    *,
    collate: Callable[[list], Any],
    hooks: Sequence[EpochHook] = (),
    resume: bool = False,
    deployed: nn.Module | None = None,
) -> Path:
    """Train ``model`` on ``data``; returns the path of the final weights (state dict only): of
    ``deployed``, the part of ``model`` that is kept after training, when given (the rest, e.g.
    a margin head, is training-only and is saved in ``last.pth`` alone).

    ``data`` has ``set_epoch(epoch)`` (its augmentation is seeded per epoch and sample) and yields
    samples ``collate`` makes batches of. ``config.out_dir`` receives ``last.pth`` (model,
    optimiser, epoch: for ``resume``), ``log.jsonl`` (losses every ``log_every`` steps and per
    epoch), ``losses.png`` (the per-epoch means, redrawn every epoch) and ``final.pth``.

    Raises:
        ConfigError: the input size does not suit ``model``, or ``out_dir`` is unusable.
        DatasetError: too few samples for a batch (or what a hook refuses).
        TrainingDivergedError: a NaN or inf loss or weights; ``last.pth`` keeps the epoch before.
        WeightsError: ``resume`` without a readable ``last.pth``.
    """
    device = torch.device("cpu")
    if torch.cuda.is_available():  # the GPU is chosen before NCCL's process group starts
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    rank, world = distributed()
    deployed = model if deployed is None else deployed
    prepare_run(config, deployed)  # the deployed network is what takes the inputs
    out_dir = Path(config.out_dir)
    model.to(device)
    start_epoch = 0
    last = out_dir / "last.pth"
    if resume:
        if not last.is_file():
            raise WeightsError(f"nothing to resume: {last} does not exist")
        state = load_checkpoint(last)
        _check_same_run(state.get("config", {}), config, last)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:  # e.g. another number of classes, or a head the run has not
            raise WeightsError(
                f"{last} does not fit the model this run trains (other data?); resume the same run"
            ) from None
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"]) + 1
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if len(data) < config.batch_size * world:
        raise DatasetError(
            f"{len(data)} training samples make no full batch of {config.batch_size} x {world} process(es)"
        )
    sampler = DistributedSampler(data, world, rank, shuffle=True, seed=config.seed) if world > 1 else None
    generator = torch.Generator()
    log_path = out_dir / "log.jsonl"
    if rank == 0:
        _restart_log(log_path, start_epoch)

    with Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[losses]}"),
        TimeRemainingColumn(),
        disable=rank != 0,
    ) as progress:
        task = progress.add_task("train", total=None, epoch=start_epoch, losses="")
        for epoch in range(start_epoch, config.epochs):
            data.set_epoch(epoch)
            generator.manual_seed(config.seed * 100_003 + epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            loader = DataLoader(
                data,
                batch_size=config.batch_size,
                shuffle=sampler is None,
                sampler=sampler,
                num_workers=config.workers,
                collate_fn=collate,
                drop_last=True,
                generator=generator,
            )
            progress.reset(task, total=len(loader), epoch=epoch, losses="")
            net.train()
            totals: dict[str, float] = {}
            counts: dict[str, int] = {}
            started = time.time()
            for step, batch in enumerate(loader):
                lr = schedule(epoch + step / len(loader))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                losses, batch_counts = objective(net, _to(batch, device))
                loss = sum(losses.values())
                if not _finite_in_every_process(loss.detach(), world):
                    raise _diverged(epoch, step, f"the loss is {loss.item()}", last)
                for name, value in batch_counts.items():
                    counts[name] = counts.get(name, 0) + value
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                for name, value in losses.items():
                    totals[name] = totals.get(name, 0.0) + value.item()
                summary = " ".join(f"{k}={v / (step + 1):.3f}" for k, v in totals.items())
                progress.update(task, advance=1, losses=summary)
                if rank == 0 and (step + 1) % config.log_every == 0:
                    record = {"epoch": epoch, "step": step + 1, "lr": lr}
                    _append_log(log_path, record | {k: v.item() for k, v in losses.items()})
            for hook in hooks:
                hook(epoch, _summed_over_processes(counts, world, device))
            # DDP keeps the weights equal in every process, so all of them stop here together.
            if not all(bool(p.isfinite().all()) for p in model.parameters()):
                raise _diverged(epoch, len(loader) - 1, "the weights hold NaN or inf after the update", last)
            if rank == 0:
                means = {k: v / max(len(loader), 1) for k, v in totals.items()}
                _append_log(log_path, {"epoch": epoch, "epoch_mean": means, "seconds": time.time() - started})
                save_checkpoint(last, _resumable_state(model, optimizer, epoch, config))
                plot_loss_curves(log_path, out_dir / "losses.png")
    final = out_dir / "final.pth"
    if rank == 0:
        save_checkpoint(final, deployed.state_dict())
    if world > 1:
        dist.destroy_process_group()
    return final


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """``value``'s mean over the data-parallel processes (itself in a single process): losses
    normalised by it weigh every process's samples alike when DDP averages the gradients."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def _to(batch: Any, device: torch.device) -> Any:
    """The tensors of a (nested tuple or list) batch, on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(item, device) for item in batch)
    return batch


def _summed_over_processes(counts: dict[str, int], world: int, device: torch.device) -> dict[str, int]:
    """``counts`` summed over the data-parallel processes (on ``device``: NCCL reduces GPU tensors
    only)."""
    if world == 1 or not counts:
        return counts
    names = sorted(counts)
    values = torch.tensor([counts[name] for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {name: int(value) for name, value in zip(names, values.tolist())}


def _finite_in_every_process(values: torch.Tensor, world: int) -> bool:
    """Whether ``values`` (on the training device) are finite in every process. Under DDP all
    processes must stop at the same step: one that stopped alone would leave the others waiting in
    a gradient all-reduce."""
    finite = torch.isfinite(values).all().float().reshape(1)
    if world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def _diverged(epoch: int, step: int, what: str, last: Path) -> TrainingDivergedError:
    """The one-line error for a non-finite loss or weights at 0-based ``step`` of ``epoch``;
    ``last`` holds the previous epoch, the last one checkpointed."""
    kept = f"{last} keeps epoch {epoch - 1}" if epoch > 0 else "no checkpoint was written"
    return TrainingDivergedError(
        f"training diverged at epoch {epoch}, step {step + 1}: {what}; {kept} (a lower --lr may help)"
    )


# What may change when a run is resumed: how long it runs, where and how fast it loads and logs.
RESUMABLE_CHANGES = ("epochs", "out_dir", "workers", "log_every", "extra")


def _check_same_run(saved: dict[str, Any], config: TrainConfig, last: Path) -> None:
    """Refuse to resume a run with other settings than it was started with: it would no longer
    be the run it continues (and not reproduce the uninterrupted one)."""
    current = json.loads(json.dumps(asdict(config), default=str))
    changed = sorted(
        k for k in current if k not in RESUMABLE_CHANGES and k in saved and saved[k] != current[k]
    )
    if changed:
        was = ", ".join(f"{k}={saved[k]!r}" for k in changed)
        raise ConfigError(f"{last} was trained with {was}; resume with the same settings (or a new --out)")


def _resumable_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, config: TrainConfig
) -> dict:
    """What ``resume`` needs, in types that load with ``weights_only=True``."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "config": json.loads(json.dumps(asdict(config), default=str)),
    }


def _restart_log(path: Path, start_epoch: int) -> None:
    """Keep the log records of the epochs before ``start_epoch`` (all of them checkpointed), drop
    the rest: a fresh run starts an empty log, a resumed one loses the killed epoch's steps (and a
    line cut short by the kill)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("epoch", start_epoch) < start_epoch:
            kept.append(line + "\n")
    with atomic_write(path, "w") as handle:
        handle.writelines(kept)


def _append_log(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
