"""How well does step 1 (per-frame pose fitting, Alldieck et al. 2018 Sec. 3.1) recover a turning
person's joints?

A synthetic sequence on the decimated MakeHuman body: ``--frames`` frames of one full turn about
the vertical, starting facing the camera, with the arms, legs and spine swinging (smooth random
per-joint sines, up to ``SWING`` rad), a known shape; a camera 3 m in front, 480 x 640, f = 800
px. Observations: the COCO-17 keypoints (the 12 the body predicts; projected joints,
confidence 1) and the rendered silhouettes; then noisy: Gaussian keypoint noise of
``--keypoint-noise`` px and masks with ``--mask-noise`` px of boundary noise (the mask dilated
or eroded by a random 0-2 px per frame, then its boundary roughened by blurring a random field).

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

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from _machine import cpu_name, set_threads  # noqa: E402 (benchmarks/_machine.py)
from scipy.spatial.transform import Rotation  # noqa: E402

from edgevision.data.paths import default_data_dir  # noqa: E402
from edgevision.recon3d.body import BodyModel  # noqa: E402
from edgevision.recon3d.camera import Camera, look_at  # noqa: E402
from edgevision.recon3d.keypoints import COCO17, project  # noqa: E402
from edgevision.recon3d.pose import PoseConfig, fit_poses  # noqa: E402
from edgevision.recon3d.render import render  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SWING = 0.25  # radians: the largest swing of a limb joint
SWINGING = ("upperarm01", "lowerarm01", "upperleg01", "lowerleg01", "spine03")
SHAPE = (0.3, -0.2, 0.4, 0.2, -0.3)  # the person's true shape coefficients


def make_camera() -> Camera:
    rotation, translation = look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    return Camera(fx=800.0, fy=800.0, cx=239.5, cy=319.5, R=rotation, t=translation, width=480, height=640)


def turning_poses(body: BodyModel, frames: int, rng: np.random.Generator) -> torch.Tensor:
    """``(T, J, 3)``: a full turn about the vertical, each swinging joint a sine about a random
    axis, twice per turn, random phase."""
    poses = torch.zeros(frames, body.num_joints, 3, dtype=body.template.dtype)
    turn = 2 * math.pi * np.arange(frames) / frames
    poses[:, 0, 1] = torch.as_tensor(turn)
    for j, name in enumerate(body.bone_names):
        if name.split(".")[0] in SWINGING:
            axis = rng.normal(size=3)
            swing = SWING * rng.uniform(0.5, 1.0) * np.sin(2 * turn + rng.uniform(0, 2 * math.pi))
            poses[:, j] = torch.as_tensor(swing[:, None] * axis / np.linalg.norm(axis))
    return poses


def noisy_mask(mask: np.ndarray, pixels: float, rng: np.random.Generator) -> np.ndarray:
    """The mask grown or shrunk by up to 2 px, its boundary roughened by ``pixels``: a smooth
    random field of that amplitude added to the signed distance before thresholding."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    grow = int(rng.integers(-2, 3))
    if grow:
        operation = cv2.dilate if grow > 0 else cv2.erode
        mask = operation(mask.astype(np.uint8), kernel, iterations=abs(grow)).astype(bool)
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    field = cv2.GaussianBlur(rng.normal(size=mask.shape).astype(np.float32), (0, 0), 4.0)
    field *= pixels / field.std()
    return (inside - outside + field) > 0


def main(
    frames: Annotated[int, typer.Option(min=2, help="frames of the full turn")] = 24,
    keypoint_noise: Annotated[float, typer.Option(min=0.0, help="px, std per coordinate")] = 3.0,
    mask_noise: Annotated[float, typer.Option(min=0.0, help="px, boundary roughness")] = 1.5,
    seed: int = 0,
) -> None:
    set_threads(1)
    body_dir = default_data_dir(REPO_ROOT) / "body_model"
    body = BodyModel.load(body_dir, dtype=torch.float64).decimated()
    rng = np.random.default_rng(seed)
    camera = make_camera()
    shape = torch.tensor(SHAPE, dtype=torch.float64)
    poses = turning_poses(body, frames, rng)
    columns, joint_indices = COCO17.predicted(body.bone_names)
    true_joints, keypoints, masks = [], np.zeros((frames, len(COCO17), 3)), []
    for t, pose in enumerate(poses):
        posed = body(pose, shape)
        true_joints.append(posed.joints)
        keypoints[t, columns.numpy(), :2] = project(posed.joints[joint_indices], camera).numpy()
        keypoints[t, columns.numpy(), 2] = 1.0
        masks.append(render(posed.vertices.numpy(), body.faces.numpy(), camera).mask)
    true_joints, masks = torch.stack(true_joints), np.stack(masks)
    noisy = keypoints.copy()
    noisy[..., :2] += rng.normal(scale=keypoint_noise, size=noisy[..., :2].shape)
    rough = np.stack([noisy_mask(m, mask_noise, rng) for m in masks])

    print(f"{cpu_name()}, 1 thread; {frames} frames, decimated body ({body.num_vertices} vertices)")
    header = (
        "condition | joint mm | joint mm, scale-aligned | 2D px (true kp) | chamfer px | flipped | s/frame"
    )
    print(header)
    print("|".join("---" for _ in header.split("|")))
    conditions = {
        "true keypoints and masks": (keypoints, masks),
        f"keypoints + {keypoint_noise:g} px noise": (noisy, masks),
        f"noisy keypoints and masks ({mask_noise:g} px, +-2 px)": (noisy, rough),
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
