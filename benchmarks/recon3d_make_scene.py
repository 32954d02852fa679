"""Write a synthetic turning person (:func:`edgevision.recon3d.synthetic.make_scene`) as the input
files of ``edgevision reconstruct`` and its ground truth (:func:`~edgevision.recon3d.synthetic.
write_scene`): ``frames/``, ``masks/``, ``keypoints.npy`` (COCO-17), ``camera.json``,
``background.png`` and ``truth.npz``. The same seed and options write the same files.

    PYTHONPATH=src .venv/bin/python benchmarks/recon3d_make_scene.py --out /tmp/scene
    PYTHONPATH=src .venv/bin/python benchmarks/recon3d_make_scene.py --out /tmp/small \\
        --frames 4 --decimated --width 120 --height 160 --focal 200
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import torch
import typer

from edgevision.data.paths import default_data_dir
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.synthetic import SceneNoise, make_scene, write_scene

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(
    out: Annotated[Path, typer.Option(help="the folder to write (one already there is replaced)")],
    seed: Annotated[int, typer.Option(help="the person, its motion and the noise")] = 0,
    frames: Annotated[int, typer.Option(min=1, help="frames of the full turn")] = 24,
    keypoint_noise: Annotated[float, typer.Option(min=0.0, max=100.0, help="px, std per coordinate")] = 0.0,
    mask_grow: Annotated[int, typer.Option(min=-20, max=20, help="px the masks grow (< 0: shrink)")] = 0,
    mask_rough: Annotated[
        float, typer.Option(min=0.0, max=20.0, help="px, std of the masks' ragged outline")
    ] = 0.0,
    decimated: Annotated[bool, typer.Option(help="the decimated body (vertex colours, fast)")] = False,
    width: Annotated[int, typer.Option(min=16)] = 480,
    height: Annotated[int, typer.Option(min=16)] = 640,
    focal: Annotated[float, typer.Option(min=1.0, help="px; the camera is 2.8 m away")] = 800.0,
) -> None:
    body_dir = default_data_dir(REPO_ROOT) / "body_model"
    if not (body_dir / "base.obj").is_file():
        raise SystemExit(f"the MakeHuman body is not at {body_dir}")
    body = BodyModel.load(body_dir, dtype=torch.float64)
    if decimated:
        body = body.decimated()
    noise = SceneNoise(keypoint_px=keypoint_noise, mask_grow=mask_grow, mask_rough_px=mask_rough)
    start = time.perf_counter()
    scene = make_scene(body, seed, frames, noise, width=width, height=height, focal=focal)
    write_scene(scene, out)
    print(
        f"wrote {out}: {frames} frames at {width}x{height} of the {body.num_vertices}-vertex body, "
        f"seed {seed}, {noise} in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    typer.run(main)
