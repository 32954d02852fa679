"""The ``edgevision`` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgevision.errors import EdgeVisionError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Efficient vision on CPUs.")
err_console = Console(stderr=True)

DEFAULT_DATA = Path("../shared/data")


@app.callback()
def _root() -> None:
    """edgevision: fast face detection and efficient vision on CPUs and embedded devices."""


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="model to train (faceboxes)")],
    data: Annotated[Path, typer.Option(help="WIDER FACE root")] = DEFAULT_DATA / "widerface",
    out: Annotated[Path, typer.Option(help="folder for checkpoints and the loss log")] = Path(
        "runs/faceboxes"
    ),
    image_size: Annotated[int, typer.Option(help="square training input, px (paper: 1024)")] = 1024,
    batch_size: int = 32,
    epochs: int = 300,
    lr: float = 1e-3,
    warmup_epochs: float = 5.0,
    milestones: Annotated[
        str, typer.Option(help="epochs where the lr drops 10x, comma-separated")
    ] = "200,250",
    workers: int = 2,
    seed: int = 0,
    teacher: Annotated[Path | None, typer.Option(help="FaceBoxes weights to distil from")] = None,
    max_images: Annotated[int | None, typer.Option(help="train on the first N images only")] = None,
    resume: Annotated[bool, typer.Option(help="continue from OUT/last.pth")] = False,
) -> None:
    """Train a detector; a checkpoint is written every epoch. Use torchrun for several processes."""
    from edgevision.training.faceboxes_recipe import train_faceboxes_on_widerface
    from edgevision.training.trainer import TrainConfig

    if model != "faceboxes":
        fail(f"training is available for 'faceboxes' only, not {model!r}")
    config = TrainConfig(
        out_dir=out,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        warmup_epochs=warmup_epochs,
        milestones=tuple(int(m) for m in milestones.split(",") if m),
        workers=workers,
        seed=seed,
        extra={"data": str(data), "teacher": str(teacher)},
    )
    final = train_faceboxes_on_widerface(data, config, teacher, max_images, resume)
    typer.echo(f"weights: {final}")


def main() -> None:
    """Entry point: runs the app, turning edgevision's errors into one line and exit code 2."""
    try:
        app()
    except EdgeVisionError as error:
        err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
