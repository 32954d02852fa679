"""Training loop for single-shot anchor detectors (FaceBoxes and its kin).

SGD with momentum and weight decay, warm-up then step schedule, the multibox loss, optional dense
distillation from a teacher with the same anchors, a checkpoint every epoch (``--resume`` loses at
most one epoch), a JSON-lines loss log, and data-parallel training over processes started by
``torchrun`` (gloo on the CPU, NCCL on GPUs). A run stops at the first NaN or inf loss, naming
its epoch and step; no checkpoint with a non-finite weight is ever written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from edgevision.data.io import atomic_write
from edgevision.detection.coder import BoxCoder
from edgevision.detection.losses import DistillationLoss, MultiBoxLoss, build_targets
from edgevision.detection.matcher import AnchorMatcher
from edgevision.errors import DatasetError, TrainingDivergedError, WeightsError
from edgevision.evaluation.plots import plot_loss_curves
from edgevision.models.checkpoint import load_checkpoint, save_checkpoint
from edgevision.training.config import TrainConfig, prepare_run
from edgevision.training.detection_dataset import FaceTrainingSet, collate_detection
from edgevision.training.schedules import warmup_step_lr


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def train_detector(
    model: nn.Module,
    dataset: FaceTrainingSet,
    config: TrainConfig,
    teacher: nn.Module | None = None,
    resume: bool = False,
) -> Path:
    """Train ``model`` on ``dataset``; returns the path of the final weights (state dict only).

    ``config.out_dir`` receives ``last.pth`` (model, optimiser, epoch: for ``resume``),
    ``log.jsonl`` (losses every ``log_every`` steps and per epoch), ``losses.png`` (the per-epoch
    means, redrawn every epoch) and ``final.pth``.

    Raises:
        ConfigError: the input size does not suit ``model``, or ``out_dir`` is unusable.
        DatasetError: too few images for a batch, or an epoch in which no face matched an anchor.
        TrainingDivergedError: a NaN or inf loss or weights; ``last.pth`` keeps the epoch before.
        WeightsError: ``resume`` without a readable ``last.pth``.
    """
    rank, world = _distributed()
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    prepare_run(config, model)
    out_dir = Path(config.out_dir)
    model.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    start_epoch = 0
    last = out_dir / "last.pth"
    if resume:
        if not last.is_file():
            raise WeightsError(f"nothing to resume: {last} does not exist")
        state = load_checkpoint(last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"]) + 1
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if teacher is not None:
        teacher.to(device).eval()

    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=config.seed) if world > 1 else None
    objective = DetectionObjective(
        anchors=model.anchors((config.image_size, config.image_size)).to(device),
        coder=model.coder,
        teacher=teacher,
        distill=DistillationLoss(config.distill_conf_weight, config.distill_loc_weight),
        world=world,
    )
    generator = torch.Generator()
    steps_per_epoch = len(dataset) // (config.batch_size * world)
    log_path = out_dir / "log.jsonl"
    if len(dataset) < config.batch_size * world:
        raise DatasetError(
            f"{len(dataset)} training images make no full batch of {config.batch_size} x {world} process(es)"
        )
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
        task = progress.add_task("train", total=steps_per_epoch, epoch=start_epoch, losses="")
        for epoch in range(start_epoch, config.epochs):
            dataset.set_epoch(epoch)
            generator.manual_seed(config.seed * 100_003 + epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                batch_size=config.batch_size,
                shuffle=sampler is None,
                sampler=sampler,
                num_workers=config.workers,
                collate_fn=collate_detection,
                drop_last=True,
                generator=generator,
            )
            progress.reset(task, total=len(loader), epoch=epoch, losses="")
            net.train()
            totals: dict[str, float] = {}
            positives = 0  # matched anchors this epoch: none means there is nothing to learn
            started = time.time()
            for step, (images, boxes) in enumerate(loader):
                lr = warmup_step_lr(
                    epoch + step / len(loader),
                    config.lr,
                    config.warmup_epochs,
                    config.milestones,
                    config.gamma,
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                losses, matched = objective(net, images.to(device), [b.to(device) for b in boxes])
                loss = sum(losses.values())
                if not _finite_in_every_process(loss.detach(), world):
                    raise _diverged(epoch, step, f"the loss is {loss.item()}", last)
                positives += matched
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                for name, value in losses.items():
                    totals[name] = totals.get(name, 0.0) + value.item()
                summary = " ".join(f"{k}={v / (step + 1):.3f}" for k, v in totals.items())
                progress.update(task, advance=1, losses=summary)
                if rank == 0 and (step + 1) % config.log_every == 0:
                    _append_log(
                        log_path,
                        {
                            "epoch": epoch,
                            "step": step + 1,
                            "lr": lr,
                            **{k: v.item() for k, v in losses.items()},
                        },
                    )
            _require_matched_faces(positives, world, epoch, len(dataset), config.image_size)
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
        save_checkpoint(final, model.state_dict())
    if world > 1:
        dist.destroy_process_group()
    return final


@dataclass
class DetectionObjective:
    """The training losses of one batch: multibox on the matched anchors, plus dense distillation
    when a teacher is given.

    Attributes:
        anchors: ``(A, 4)`` cxcywh pixel anchors of the (fixed) training input size.
        coder: the box coder the network's offsets use.
        teacher: a network with the same anchors, or None.
        world: the number of data-parallel processes. The losses are divided by the mean number of
            positives per process, so that DDP's mean of the processes' gradients is the gradient
            of the global batch's loss (each process's own count would weigh its faces
            differently).
    """

    anchors: torch.Tensor
    coder: BoxCoder
    teacher: nn.Module | None = None
    world: int = 1
    distill: DistillationLoss = field(default_factory=DistillationLoss)
    matcher: AnchorMatcher = field(default_factory=AnchorMatcher)
    multibox: MultiBoxLoss = field(default_factory=MultiBoxLoss)

    def __call__(
        self, net: nn.Module, images: torch.Tensor, boxes: list[torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], int]:
        """``(B, 3, S, S)`` inputs and per-image ``(N_i, 4)`` xyxy faces -> named scalar losses,
        and the number of anchors matched to a face (the multibox loss is 0 without any)."""
        targets = build_targets(boxes, self.anchors, self.matcher, self.coder)
        positives = (targets.labels > 0).sum()
        normaliser = positives.float()
        if self.world > 1:
            dist.all_reduce(normaliser)
            normaliser = normaliser / self.world
        normaliser = normaliser.clamp(min=1)
        loc, conf = net(images)
        losses = self.multibox(loc, conf, targets, normaliser)
        if self.teacher is not None:
            with torch.no_grad():
                teacher_loc, teacher_conf = self.teacher(images)
            losses |= self.distill(loc, conf, teacher_loc, teacher_conf, normaliser)
        return losses, int(positives)


def _finite_in_every_process(values: torch.Tensor, world: int) -> bool:
    """Whether ``values`` are finite in every process. Under DDP all processes must stop at the
    same step: one that stopped alone would leave the others waiting in a gradient all-reduce."""
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


def _require_matched_faces(positives: int, world: int, epoch: int, images: int, image_size: int) -> None:
    """Refuse an epoch in which no anchor was matched to a face in any process: the multibox loss
    was 0 and nothing was learnt (faces too small for the anchors at this size, or none at all)."""
    count = torch.tensor([positives], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(count)
    if count.item() == 0:
        raise DatasetError(
            f"no face of the {images} training images matched an anchor in epoch {epoch} at "
            f"{image_size} px: nothing can be learnt (faces too small for the anchors at this size?)"
        )


def _resumable_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, config: TrainConfig
) -> dict:
    """What ``--resume`` needs, in types that load with ``weights_only=True``."""
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
