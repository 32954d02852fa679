"""The consensus shape (Alldieck et al. 2018, step 2) on the synthetic turning person WITH THE TRUE
POSES: mean vertex error (mm) of the canonical shape against the ground truth (template + shape +
offsets, the full 13,380-vertex body), beside the template-only baselines, with exact and noisy
silhouettes, and the step's runtime (wall and CPU seconds).

The scene: :func:`edgevision.recon3d.synthetic.make_scene` (the full body, ``--frames`` frames of
one turn, 480 x 640 pixels, f = 800 px at 2.8 m). The consensus catches the rays with the full
body's vertices and solves for offsets on the body decimated to 2.5 cm cells (lifted smoothly).
"start shape": beta at the start, the truth's, the mean (0) or the truth's with size 0 (step 1
holds size at 0 and fits a global scale instead). "seen" is the error over the vertices that lie
on the true silhouette in at least one frame (concavities never do, and silhouettes cannot see
them).

    PYTHONPATH=src .venv/bin/python benchmarks/recon3d_consensus.py
"""

from __future__ import annotations

import time
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from edgevision.data.paths import default_data_dir
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.consensus import ConsensusConfig, consensus_shape, silhouette_vertices
from edgevision.recon3d.synthetic import SceneNoise, make_scene, observe

CELL = 0.025  # metres: the unknowns' decimation
OUTLINE_PX = 1.5


def main(
    seed: Annotated[int, typer.Option(help="scene seed")] = 0,
    frames: Annotated[int, typer.Option(min=1, help="frames of the turn")] = 24,
    jitter: Annotated[str, typer.Option(help="comma-separated boundary jitters, pixels (std)")] = "1,2",
    start: Annotated[
        str, typer.Option(help="comma-separated start shapes: true, mean (beta = 0), nosize (true, size 0)")
    ] = "true,mean",
    stages: Annotated[bool, typer.Option(help="print each stage's CPU seconds and data energy")] = False,
) -> None:
    torch.set_num_threads(1)
    body = BodyModel.load(default_data_dir() / "body_model", dtype=torch.float64)
    scene = make_scene(body, seed, frames)
    truth = scene.canonical
    seen = torch.zeros(body.num_vertices, dtype=torch.bool)
    for vertices in scene.vertices:
        seen[silhouette_vertices(vertices, body.faces, scene.camera, OUTLINE_PX)] = True

    def errors(vertices: torch.Tensor) -> tuple[str, str]:
        distance = (vertices - truth).norm(dim=1) * 1000
        return f"{distance.mean():.2f}", f"{distance[seen].mean():.2f}"

    table = Table(title=f"consensus shape, true poses, {frames} frames, seed {seed}: mean vertex error, mm")
    for column in ("method", "start shape", "silhouettes", "all", "seen", "seconds", "CPU s"):
        table.add_column(column, justify="left" if column in ("method", "silhouettes") else "right")
    zero = torch.zeros(len(body.shape_names), dtype=torch.float64)
    table.add_row("template (no offsets)", "mean", "-", *errors(body.canonical(zero)[0]), "-", "-")
    table.add_row("template (no offsets)", "true", "-", *errors(body.canonical(scene.shape)[0]), "-", "-")
    config = ConsensusConfig(cell=CELL, outline_px=OUTLINE_PX)
    starts = {"true": scene.shape, "mean": zero, "nosize": scene.shape * (torch.arange(len(zero)) != 0)}
    chosen = [name for name in start.split(",") if name]
    if unknown := set(chosen) - set(starts):
        raise typer.BadParameter(f"unknown start shape(s) {sorted(unknown)}, choose from {sorted(starts)}")
    jitters = [float(value) for value in jitter.split(",") if value]
    runs = [(name, "exact", scene.boundaries) for name in chosen]
    for px in jitters:
        noise = SceneNoise(boundary_px=px)
        generator = torch.Generator().manual_seed(seed)
        boundaries = observe(scene.clean_masks, scene.keypoints, noise, generator)[2]
        runs += [(name, f"jitter {px:g} px", boundaries) for name in chosen]
    for start_name, silhouettes, boundaries in runs:
        began, cpu = time.perf_counter(), time.process_time()
        result = consensus_shape(
            body, scene.poses, boundaries, scene.camera, config, shape=starts[start_name]
        )
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        row = (*errors(result.vertices), f"{seconds:.0f}", f"{cpu:.0f}")
        table.add_row("consensus", start_name, silhouettes, *row)
        print(f"{start_name} {silhouettes}: mm all/seen {row[:2]}, {row[2]} s, {row[3]} CPU s", flush=True)
        for index, entry in enumerate(result.log if stages else ()):
            kind = "D+beta" if entry.stage.offsets else "beta"
            print(
                f"  stage {index + 1} {kind} sigma {entry.stage.sigma:g}: data {entry.data_end:.4f}, "
                f"{entry.cpu_seconds:.1f} CPU s"
            )
    Console(width=120).print(table)
    shape_only = sum(not stage.offsets for stage in config.stages)
    print(
        f"{body.num_vertices} vertices catch the rays, offsets on {CELL} m cells, {len(config.stages)}"
        f" stages ({shape_only} shape-only, their rays caught by the {CELL} m body)"
    )


if __name__ == "__main__":
    typer.run(main)
