"""How fast, and how exact, is recon3d's texture stitching?

The MakeHuman body (its own UVs), painted with a known texture (smooth waves across the atlas,
1024x1024), turns a full circle in front of a fixed camera (root rotation, ``--frames`` evenly
spaced views, 3 m away, the body 80% of the image height) and is rendered at ``--width`` x
``--height`` by recon3d's rasteriser; :func:`edgevision.recon3d.texture.stitch_texture` then
stitches a ``--size`` texture back from the frames, with the true posed meshes. Prints the
stitching's median wall time over ``--repeats`` runs (after one untimed run; rendering the frames
not included) and the CPU time of one, on one thread (on a shared machine the CPU time is the
figure to trust), and the texture's error in grey levels against the painted waves sampled at
the texel centres: over every texel seen, and over those at least ``size / 64`` texels inside
their chart (at a chart's border the painted waves jump on the body, where a seam joins two
unrelated places of the atlas, and a pixel mixes both).

    PYTHONPATH=src .venv/bin/python benchmarks/recon3d_texture.py
"""

from __future__ import annotations

import os

# One thread for OpenBLAS too: its pool is sized when numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from _machine import cpu_name, median_s, set_threads  # noqa: E402 (benchmarks/_machine.py)
from scipy.ndimage import binary_erosion  # noqa: E402

from edgevision.data.paths import default_data_dir  # noqa: E402
from edgevision.recon3d.body import BodyModel  # noqa: E402
from edgevision.recon3d.camera import Camera, look_at  # noqa: E402
from edgevision.recon3d.render import render  # noqa: E402
from edgevision.recon3d.texture import atlas_texels, stitch_texture  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DISTANCE, FILL = 3.0, 0.8
# Per channel (B, G, R): 128 + 100 sin(2 pi (a u + b v) + phase).
WAVES = [(3.0, 1.0, 0.0), (1.0, -3.0, 1.0), (2.0, 2.0, np.pi / 2)]


def painted(size: int) -> np.ndarray:
    """(size, size, 3) float64: the waves at the texel centres (v up)."""
    rows, columns = np.mgrid[0:size, 0:size]
    u, v = (columns + 0.5) / size, 1.0 - (rows + 0.5) / size
    return np.stack(
        [128 + 100 * np.sin(2 * np.pi * (a * u + b * v) + phase) for a, b, phase in WAVES], axis=-1
    )


def main(
    frames: Annotated[int, typer.Option(min=1, help="views over a full turn")] = 24,
    width: Annotated[int, typer.Option(min=16)] = 320,
    height: Annotated[int, typer.Option(min=16)] = 240,
    size: Annotated[int, typer.Option(min=8, help="texels along the atlas's side")] = 512,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs")] = 3,
) -> None:
    set_threads(1)
    body_dir = default_data_dir(REPO_ROOT) / "body_model"
    if not (body_dir / "base.obj").is_file():
        raise SystemExit(f"the MakeHuman body is not at {body_dir}")
    body = BodyModel.load(body_dir, dtype=torch.float64)
    faces, face_uvs, uvs = body.faces.numpy(), body.face_uvs.numpy(), body.uvs.numpy()
    texture = np.clip(np.rint(painted(1024)), 0, 255).astype(np.uint8)

    start = time.perf_counter()
    vertices, cameras, images, masks = [], [], [], []
    for frame in range(frames):
        pose = torch.zeros(body.num_joints, 3, dtype=torch.float64)
        pose[0, 1] = 2 * np.pi * frame / frames
        posed = body(pose).vertices.numpy()
        if not cameras:
            middle = (posed.min(axis=0) + posed.max(axis=0)) / 2
            rotation, translation = look_at(middle + [0.0, 0.0, DISTANCE], middle, np.array([0.0, 1.0, 0.0]))
            focal = FILL * height / 2 * DISTANCE / ((posed[:, 1].max() - posed[:, 1].min()) / 2)
            camera = Camera(
                focal, focal, (width - 1) / 2, (height - 1) / 2, rotation, translation, width, height
            )
        seen = render(posed, faces, camera, uv=uvs[face_uvs], texture=texture)
        vertices.append(posed)
        cameras.append(camera)
        images.append(seen.image)
        masks.append(seen.mask)
    rendered_s = time.perf_counter() - start

    def stitch() -> object:
        return stitch_texture(vertices, faces, face_uvs, uvs, cameras, images, masks, size)

    seconds = median_s(stitch, repeats)
    cpu_start = time.process_time()
    stitched = stitch()
    cpu_seconds = time.process_time() - cpu_start
    atlas = np.zeros((size, size), bool)
    inside = atlas_texels(uvs, face_uvs, size)
    atlas[inside.rows, inside.columns] = True
    error = np.abs(stitched.texture - painted(size)).mean(axis=2)
    margin = max(2, size // 64)  # texels: about two image pixels on the torso at 320x240, 512
    interior = stitched.seen & binary_erosion(atlas, iterations=margin)
    print(f"{cpu_name()}, {os.cpu_count()} logical CPUs, 1 thread, load average {os.getloadavg()[0]:.1f}")
    print(f"{frames} frames at {width}x{height} rendered in {rendered_s:.1f} s (not timed below)")
    print(
        f"stitching a {size}x{size} texture: {seconds:.2f} s wall (median of {repeats}), "
        f"{cpu_seconds:.2f} s CPU"
    )
    seen, total = int(stitched.seen.sum()), int(atlas.sum())
    print(f"texels: {total} in the atlas, {seen} seen ({seen / total:.1%})")
    print(
        f"error, grey levels: seen mean {error[stitched.seen].mean():.2f}, "
        f"median {np.median(error[stitched.seen]):.2f}; {margin}+ texels inside their chart "
        f"({interior.sum()} texels) mean {error[interior].mean():.2f}, "
        f"median {np.median(error[interior]):.2f}, "
        f"99th percentile {np.percentile(error[interior], 99):.1f}"
    )


if __name__ == "__main__":
    typer.run(main)
