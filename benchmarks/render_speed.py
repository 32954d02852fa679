"""How fast is recon3d's numpy rasteriser on a body-sized mesh?

Renders, on one thread, an ellipsoid of a person's proportions (0.5 x 1.7 x 0.3 m, triangles of
the convex hull of a Fibonacci lattice, so ``--triangles`` of even size) 3 m from the camera,
filling 80% of the image height, as the synthetic benchmark's frames do; at 640x480 and 320x240,
the silhouette alone and with vertex colours. Prints the median of ``--repeats`` runs after one
warm-up run, and how many pixels the mesh covers.

    PYTHONPATH=src .venv/bin/python benchmarks/render_speed.py
"""

from __future__ import annotations

import os

# One thread for OpenBLAS too: its pool is sized when numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

from typing import Annotated  # noqa: E402

import numpy as np  # noqa: E402
import typer  # noqa: E402
from _machine import cpu_name, median_s, set_threads  # noqa: E402 (benchmarks/_machine.py)
from scipy.spatial import ConvexHull  # noqa: E402

from edgevision.recon3d.camera import Camera, look_at  # noqa: E402
from edgevision.recon3d.render import render  # noqa: E402

SEMI_AXES = np.array([0.25, 0.85, 0.15])  # metres: a person's width, height and depth, halved
DISTANCE, FILL = 3.0, 0.8
SIZES = [(640, 480), (320, 240)]


def ellipsoid(triangles: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed ellipsoid of about ``triangles`` triangles (2 V - 4 for V hull vertices)."""
    count = triangles // 2 + 2
    index = np.arange(count) + 0.5
    polar, azimuth = np.arccos(1 - 2 * index / count), np.pi * (1 + 5**0.5) * index
    sphere = np.column_stack(
        [np.cos(azimuth) * np.sin(polar), np.cos(polar), np.sin(azimuth) * np.sin(polar)]
    )
    return sphere * SEMI_AXES, ConvexHull(sphere).simplices


def main(
    triangles: Annotated[int, typer.Option(min=8, help="triangles of the mesh")] = 20000,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs")] = 5,
) -> None:
    set_threads(1)
    vertices, faces = ellipsoid(triangles)
    colors = np.abs(vertices / SEMI_AXES) * 255
    rotation, translation = look_at(np.array([0.0, 0.0, DISTANCE]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    print(
        f"{cpu_name()}, {os.cpu_count()} logical CPUs, 1 thread; {len(faces)} triangles; median of {repeats}"
    )
    for width, height in SIZES:
        focal = FILL * height / 2 * DISTANCE / SEMI_AXES[1]
        camera = Camera(focal, focal, (width - 1) / 2, (height - 1) / 2, rotation, translation, width, height)
        covered = int(render(vertices, faces, camera).mask.sum())
        silhouette = median_s(lambda: render(vertices, faces, camera), repeats)  # noqa: B023 (timed now)
        colored = median_s(lambda: render(vertices, faces, camera, vertex_colors=colors), repeats)  # noqa: B023
        print(
            f"{width}x{height}: {covered} pixels covered; silhouette {silhouette * 1e3:.0f} ms, "
            f"with vertex colours {colored * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    typer.run(main)
