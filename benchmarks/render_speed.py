"""How fast is recon3d's numpy rasteriser on a body?

Renders, on one thread, the MakeHuman body in its rest pose (26,756 triangles), its decimation
(the mesh the fitting uses), and an ellipsoid of a person's proportions of ``--triangles``
triangles (0.5 x 1.7 x 0.3 m, the convex hull of a Fibonacci lattice; run without the shared
data), each 3 m in front of the camera and filling 80% of the image height, as the synthetic
benchmark's frames do; at 640x480 and 320x240: the silhouette alone, with vertex colours, and
with a 1024x1024 texture (the body's own UVs). Prints the median of ``--repeats`` runs after one
warm-up run, and how many pixels the mesh covers.

    PYTHONPATH=src .venv/bin/python benchmarks/render_speed.py
"""

from __future__ import annotations

import os

# One thread for OpenBLAS too: its pool is sized when numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from _machine import cpu_name, median_s, set_threads  # noqa: E402 (benchmarks/_machine.py)
from scipy.spatial import ConvexHull  # noqa: E402

from edgevision.data.paths import default_data_dir  # noqa: E402
from edgevision.recon3d.body import BodyModel  # noqa: E402
from edgevision.recon3d.camera import Camera, look_at  # noqa: E402
from edgevision.recon3d.render import render  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SEMI_AXES = np.array([0.25, 0.85, 0.15])  # metres: a person's width, height and depth, halved
DISTANCE, FILL = 3.0, 0.8
SIZES = [(640, 480), (320, 240)]
TEXTURE = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)


def ellipsoid(triangles: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed ellipsoid of about ``triangles`` triangles (2 V - 4 for V hull vertices)."""
    count = triangles // 2 + 2
    index = np.arange(count) + 0.5
    polar, azimuth = np.arccos(1 - 2 * index / count), np.pi * (1 + 5**0.5) * index
    sphere = np.column_stack(
        [np.cos(azimuth) * np.sin(polar), np.cos(polar), np.sin(azimuth) * np.sin(polar)]
    )
    return sphere * SEMI_AXES, ConvexHull(sphere).simplices


def meshes(triangles: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Name -> vertices (V, 3), faces (F, 3), per-corner UVs (F, 3, 2) or None."""
    found = {"ellipsoid": (*ellipsoid(triangles), None)}
    body_dir = default_data_dir(REPO_ROOT) / "body_model"
    if (body_dir / "base.obj").is_file():
        body = BodyModel.load(body_dir, dtype=torch.float64)
        found["MakeHuman body"] = (body.template.numpy(), body.faces.numpy(), body.uvs[body.face_uvs].numpy())
        small = body.decimated()
        found["decimated body"] = (small.template.numpy(), small.faces.numpy(), None)
    return found


def main(
    triangles: Annotated[int, typer.Option(min=8, help="triangles of the ellipsoid")] = 20000,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs")] = 5,
) -> None:
    set_threads(1)
    print(f"{cpu_name()}, {os.cpu_count()} logical CPUs, 1 thread; median of {repeats} runs, ms")
    for name, (vertices, faces, uv) in meshes(triangles).items():
        centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
        half_height = (vertices[:, 1].max() - vertices[:, 1].min()) / 2
        rotation, translation = look_at(centre + [0.0, 0.0, DISTANCE], centre, np.array([0.0, 1.0, 0.0]))
        colors = np.abs(vertices - centre) / np.abs(vertices - centre).max(axis=0) * 255
        for width, height in SIZES:
            focal = FILL * height / 2 * DISTANCE / half_height
            camera = Camera(
                focal, focal, (width - 1) / 2, (height - 1) / 2, rotation, translation, width, height
            )
            cases: dict[str, Callable[[], object]] = {
                "silhouette": lambda: render(vertices, faces, camera),  # noqa: B023 (timed at once)
                "vertex colours": lambda: render(vertices, faces, camera, vertex_colors=colors),  # noqa: B023
            }
            if uv is not None:
                cases["texture"] = lambda: render(vertices, faces, camera, uv=uv, texture=TEXTURE)  # noqa: B023
            covered = int(render(vertices, faces, camera).mask.sum())
            times = ", ".join(f"{case} {median_s(fn, repeats) * 1e3:.0f}" for case, fn in cases.items())
            print(f"{name} ({len(faces)} triangles) at {width}x{height}, {covered} pixels covered: {times}")


if __name__ == "__main__":
    typer.run(main)
