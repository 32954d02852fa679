"""How well does step 1 (per-frame pose fitting, Alldieck et al. 2018 Sec. 3.1) recover a turning
person's joints?

The scene: :func:`edgevision.recon3d.synthetic.make_scene` on the decimated MakeHuman body
(``--frames`` frames of one full turn about the vertical, starting facing the camera, the arms,
legs and spine swinging, a random shape and clothing offsets of up to 3 cm per ``--seed``; the
camera 2.8 m in front, 480 x 640, f = 800 px). Observations: the COCO-17 keypoints (the 12 the
body predicts; projected joints, confidence 1) and the rendered silhouettes; then noisy: Gaussian
keypoint noise of ``--keypoint-noise`` px, and masks grown by ``--mask-grow`` px with a ragged
outline of ``--mask-noise`` px (:class:`~edgevision.recon3d.synthetic.SceneNoise`).

Per condition: the mean 3D joint error (mm, over all 20 joints and frames: raw, and after the one
scale about the camera centre that a single camera cannot see), the mean 2D reprojection error of
the fitted keypoints against the TRUE keypoints (px), the silhouette chamfer (px), how many frames
face the wrong way (global orientation off by more than 90 degrees) and the time per frame.

    PYTHONPATH=src .venv/bin/python benchmarks/recon3d_pose.py
"""

from __future__ import annotations

import math
import os
import time

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from _machine import cpu_name, set_threads  # noqa: E402 (benchmarks/_machine.py)
from scipy.spatial.transform import Rotation  # noqa: E402

from edgevision.data.paths import default_data_dir  # noqa: E402
from edgevision.recon3d.body import BodyModel  # noqa: E402
from edgevision.recon3d.keypoints import COCO17, project  # noqa: E402
from edgevision.recon3d.pose import PoseConfig, fit_poses  # noqa: E402
from edgevision.recon3d.synthetic import SceneNoise, make_scene  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(
    frames: Annotated[int, typer.Option(min=2, help="frames of the full turn")] = 24,
    keypoint_noise: Annotated[float, typer.Option(min=0.0, max=100.0, help="px, std per coordinate")] = 3.0,
    mask_noise: Annotated[float, typer.Option(min=0.0, max=20.0, help="px, the masks' ragged outline")] = 1.5,
    mask_grow: Annotated[int, typer.Option(min=-20, max=20, help="px the noisy masks grow")] = 1,
    seed: int = 0,
) -> None:
    set_threads(1)
    body_dir = default_data_dir(REPO_ROOT) / "body_model"
    body = BodyModel.load(body_dir, dtype=torch.float64).decimated()
    # The same seed: the same person, motion and images; the noise only degrades the observations.
    truth = make_scene(body, seed, frames)
    noise = SceneNoise(keypoint_px=keypoint_noise, mask_grow=mask_grow, mask_rough_px=mask_noise)
    noisy = make_scene(body, seed, frames, noise)
    camera, poses, true_joints = truth.camera, truth.poses, truth.joints
    keypoints, masks = truth.coco_keypoints, truth.masks
    columns, joint_indices = COCO17.predicted(body.bone_names)

    print(f"{cpu_name()}, 1 thread; {frames} frames, decimated body ({body.num_vertices} vertices)")
    header = (
        "condition | joint mm | joint mm, scale-aligned | 2D px (true kp) | chamfer px | flipped | s/frame"
    )
    print(header)
    print("|".join("---" for _ in header.split("|")))
    conditions = {
        "true keypoints and masks": (keypoints, masks),
        f"keypoints + {keypoint_noise:g} px noise": (noisy.coco_keypoints, masks),
        f"noisy keypoints and masks ({mask_noise:g} px ragged, {mask_grow:+d} px)": (
            noisy.coco_keypoints,
            noisy.masks,
        ),
    }
    for name, (observed, silhouettes) in conditions.items():
        start = time.perf_counter()
        fit = fit_poses(body, camera, observed, silhouettes, config=PoseConfig())
        per_frame = (time.perf_counter() - start) / frames
        joints = fit.joints(body)
        raw = (joints - true_joints).norm(dim=-1).mean()
        # the unseen similarity: scaling everything about the camera centre
        centre = torch.as_tensor(camera.center)
        a, b = (joints - centre).reshape(-1), (true_joints - centre).reshape(-1)
        aligned = (centre + (a @ b / (a @ a)) * (joints - centre) - true_joints).norm(dim=-1).mean()
        reprojection = np.mean(
            [
                (project(j[joint_indices], camera) - torch.as_tensor(k[columns.numpy(), :2]))
                .norm(dim=1)
                .mean()
                for j, k in zip(joints, keypoints)
            ]
        )
        turned = (
            Rotation.from_rotvec(fit.poses[:, 0].numpy()) * Rotation.from_rotvec(poses[:, 0].numpy()).inv()
        )
        flipped = int((turned.magnitude() > math.pi / 2).sum())
        print(
            f"{name} | {1000 * raw:.1f} | {1000 * aligned:.1f} | {reprojection:.2f} | "
            f"{fit.silhouette_px.mean():.2f} | {flipped}/{frames} | {per_frame:.2f}"
        )


if __name__ == "__main__":
    typer.run(main)
