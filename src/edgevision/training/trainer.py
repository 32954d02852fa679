"""Training loop for single-shot anchor detectors (FaceBoxes and its kin).

SGD with momentum and weight decay, warm-up then step schedule, the multibox loss, optional dense
distillation from a teacher with the same anchors, a checkpoint every epoch (``--resume`` loses at
most one epoch), a JSON-lines loss log, and data-parallel training over processes started by
``torchrun`` (gloo on the CPU, NCCL on GPUs).
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
from edgevision.errors import DatasetError, WeightsError
from edgevision.evaluation.plots import plot_loss_curves
from edgevision.models.checkpoint import load_checkpoint, save_checkpoint
from edgevision.training.detection_dataset import FaceTrainingSet, collate_detection
from edgevision.training.schedules import warmup_step_lr


@dataclass
class TrainConfig:
    """Training hyper-parameters. Defaults are FaceBoxes.PyTorch's (which follow the paper,
    Sec. 4.1: SGD, momentum 0.9, weight decay 5e-4, batch 32, lr 1e-3 for 200 epochs then 10x
    less), except the warm-up, which is ours."""

    out_dir: Path
    image_size: int = 1024  # square training input (Sec. 4.1); use less on a CPU
    batch_size: int = 32  # per process
    epochs: int = 300  # FaceBoxes.PyTorch: 300
    lr: float = 1e-3  # Sec. 4.1
    momentum: float = 0.9  # Sec. 4.1
    weight_decay: float = 5e-4  # Sec. 4.1
    warmup_epochs: float = 5.0  # ours: linear from lr/10 (FaceBoxes.PyTorch has none)
    milestones: tuple[int, ...] = (200, 250)  # epochs where lr drops by gamma (FaceBoxes.PyTorch)
    gamma: float = 0.1
    workers: int = 2  # data-loading processes
    seed: int = 0  # initial weights, shuffling and augmentation
    distill_conf_weight: float = 1.0  # ours: KL to the teacher's class probabilities
    distill_loc_weight: float = 1.0  # ours: smooth L1 to the teacher's offsets where it sees a face
    log_every: int = 10  # steps between log records
    extra: dict[str, object] = field(default_factory=dict)  # recorded in the checkpoint, e.g. the data path


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
    """
    rank, world = _distributed()
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
                losses = objective(net, images.to(device), [b.to(device) for b in boxes])
                loss = sum(losses.values())
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
    """

    anchors: torch.Tensor
    coder: BoxCoder
    teacher: nn.Module | None = None
    distill: DistillationLoss = field(default_factory=DistillationLoss)
    matcher: AnchorMatcher = field(default_factory=AnchorMatcher)
    multibox: MultiBoxLoss = field(default_factory=MultiBoxLoss)

    def __call__(
        self, net: nn.Module, images: torch.Tensor, boxes: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``(B, 3, S, S)`` inputs and per-image ``(N_i, 4)`` xyxy faces -> named scalar losses."""
        targets = build_targets(boxes, self.anchors, self.matcher, self.coder)
        loc, conf = net(images)
        losses = self.multibox(loc, conf, targets)
        if self.teacher is not None:
            with torch.no_grad():
                teacher_loc, teacher_conf = self.teacher(images)
            normaliser = (targets.labels > 0).sum().clamp(min=1).float()
            losses |= self.distill(loc, conf, teacher_loc, teacher_conf, normaliser)
        return losses


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
