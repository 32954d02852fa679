"""Step 1, per-frame pose fitting: the silhouette term, the prior's hinge, frame 0's placement,
fitting from a perturbed pose, and the temporal initialisation, on a small turning scene."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import edgevision.recon3d.pose as pose_module
from edgevision.errors import ShapeError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera, look_at
from edgevision.recon3d.keypoints import COCO17, project
from edgevision.recon3d.pose import FrameProblem, FrameState, PoseConfig, fit_poses, initial_state
from edgevision.recon3d.render import render

FAST = PoseConfig(rounds=2, iterations=20, shape_frames=2)
TURN = math.radians(10)  # per frame


@dataclass
class Scene:
    camera: Camera
    poses: torch.Tensor  # (T, J, 3)
    joints: torch.Tensor  # (T, J, 3) world
    keypoints: np.ndarray  # (T, 17, 3)
    masks: np.ndarray  # (T, H, W)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threads only add overhead
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene(small_body: BodyModel) -> Scene:
    """3 frames of the rest-shape body turning by ``TURN`` a frame with its limbs swinging, seen
    by a 240 x 320 camera 3 m in front."""
    rotation, translation = look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    camera = Camera(fx=400.0, fy=400.0, cx=119.5, cy=159.5, R=rotation, t=translation, width=240, height=320)
    frames = 3
    poses = 0.15 * torch.randn(
        small_body.num_joints, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    poses = poses * torch.linspace(0.5, 1.0, frames, dtype=torch.float64)[:, None, None]
    poses[:, 0] = 0.0
    poses[:, 0, 1] = TURN * torch.arange(frames, dtype=torch.float64)
    knees = [small_body.bone_names.index(f"lowerleg01.{side}") for side in "LR"]
    poses[:, knees] = poses[:, knees].abs()  # flexed, not hyperextended: the prior's hinge holds
    columns, joint_indices = COCO17.predicted(small_body.bone_names)
    keypoints = np.zeros((frames, 17, 3))
    joints, masks = [], []
    for t, pose in enumerate(poses):
        posed = small_body(pose)
        joints.append(posed.joints)
        keypoints[t, columns.numpy(), :2] = project(posed.joints[joint_indices], camera).numpy()
        keypoints[t, columns.numpy(), 2] = 1.0
        masks.append(render(posed.vertices.numpy(), small_body.faces.numpy(), camera).mask)
    return Scene(camera, poses, torch.stack(joints), keypoints, np.stack(masks))


def _true_state(scene: Scene, body: BodyModel, frame: int) -> FrameState:
    zeros = torch.zeros(len(body.shape_names), dtype=torch.float64)
    return FrameState(scene.poses[frame], torch.zeros(3, dtype=torch.float64), zeros, 1.0)


def _problem(scene: Scene, body: BodyModel, frame: int, config: PoseConfig = FAST) -> FrameProblem:
    return FrameProblem(body, scene.camera, scene.keypoints[frame], scene.masks[frame], COCO17, config)


def test_world_points_are_the_scaled_posed_body_on_any_vertex_subset(small_body: BodyModel) -> None:
    generator = torch.Generator().manual_seed(2)
    pose = 0.3 * torch.randn(small_body.num_joints, 3, generator=generator, dtype=torch.float64)
    shape = torch.randn(len(small_body.shape_names), generator=generator, dtype=torch.float64)
    state = FrameState(pose, torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), shape, 1.1)
    posed = small_body(pose, shape)
    subset = torch.tensor([5, 0, 2000, 17])
    vertices, joints = pose_module.world_points(small_body, state, subset)
    torch.testing.assert_close(vertices, 1.1 * posed.vertices[subset] + state.translation)
    torch.testing.assert_close(joints, 1.1 * posed.joints + state.translation)
    torch.testing.assert_close(
        pose_module.world_points(small_body, state)[0], 1.1 * posed.vertices + state.translation
    )


def test_silhouette_term_is_minimal_at_the_truth_and_pulls_a_shifted_model_back(
    scene: Scene, small_body: BodyModel
) -> None:
    problem = _problem(scene, small_body, 1)
    truth = _true_state(scene, small_body, 1)
    problem.refresh_contour(truth)
    # About half a pixel each way: the contour vertices lie between the boundary pixels' centres
    # and the next ones out; the image -> model side adds the gaps between contour vertices.
    contour = pose_module.world_points(small_body, truth, problem.contour)[0]
    model_to_image, image_to_model = problem.silhouette_distances(contour)
    assert float(model_to_image.mean()) < 0.8 and float(image_to_model.mean()) < 1.5
    at_truth = float(problem.silhouette_energy(contour))
    # the model 2 cm (~2.7 px) to the world's +x, the image's right: the gradient pulls it left
    shift = torch.tensor([0.02, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    shifted = replace(truth, translation=shift)
    problem.refresh_contour(shifted)
    energy = problem.silhouette_energy(pose_module.world_points(small_body, shifted, problem.contour)[0])
    energy.backward()
    assert float(energy.detach()) > 3 * at_truth
    assert shift.grad[0] > 0 and shift.grad[0] > 5 * shift.grad[1:].abs().max()


def _bend(body: BodyModel, pose: torch.Tensor, side: str, bones: tuple[str, str, str]) -> float:
    """The angle (radians) between a limb's two bones when posed: 0 when straight."""
    top, middle, bottom = (body(pose).joints[body.bone_names.index(f"{b}.{side}")] for b in bones)
    above, below = middle - top, bottom - middle
    return float(torch.arccos(above @ below / (above.norm() * below.norm())))


def test_hinge_lets_knees_and_elbows_bend_and_straighten_but_not_hyperextend(
    scene: Scene, small_body: BodyModel
) -> None:
    problem = _problem(scene, small_body, 0)
    weight, hinge = FAST.pose_prior_weight, FAST.hinge_weight
    leg, arm = ("upperleg01", "lowerleg01", "foot"), ("upperarm01", "lowerarm01", "wrist")
    rest = torch.zeros(small_body.num_joints, 3, dtype=torch.float64)
    for side in "LR":
        for bones in (leg, arm):
            joint = small_body.bone_names.index(f"{bones[1]}.{side}")
            row = problem.hinges[0].tolist().index(joint)
            axis, limit = problem.hinges[1][row], float(problem.hinges[2][row])
            # the limit is the rest bend (the knee's about +x only, a little less than its angle)
            assert limit == pytest.approx(_bend(small_body, rest, side, bones), abs=0.015)
            for turn, bend, cost in [
                (0.4, limit + 0.4, weight * 0.4**2),  # bent further: the L2 prior only
                (-limit, 0.0, weight * limit**2),  # straightened: still free of the hinge
                (-limit - 0.3, 0.3, weight * (limit + 0.3) ** 2 + hinge * 0.3**2),  # past straight
            ]:
                pose = rest.clone()
                pose[joint] = turn * axis
                # the knee's rest bend is partly sideways, which its +x axis does not undo: the
                # straightened knee keeps 0.05 rad; the elbow's axis is its bend's own
                assert _bend(small_body, pose, side, bones) == pytest.approx(bend, abs=0.06)
                assert float(problem.pose_prior(pose)) == pytest.approx(cost)
    # +x at the knee swings the foot backwards (-z): a real knee bend
    knee, foot = (small_body.bone_names.index(name) for name in ("lowerleg01.L", "foot.L"))
    flexed = rest.clone()
    flexed[knee, 0] = 0.4
    assert small_body(flexed).joints[foot, 2] < small_body.joints[foot, 2] - 0.1


def test_frame_zero_starts_facing_the_camera_on_the_keypoints(scene: Scene, small_body: BodyModel) -> None:
    start = initial_state(small_body, scene.camera, scene.keypoints[0], COCO17)
    joints = pose_module.world_points(small_body, start)[1]
    columns, joint_indices = COCO17.predicted(small_body.bone_names)
    placed = joints[joint_indices].mean(dim=0).numpy()
    pixel, _ = scene.camera.project(placed[None])
    np.testing.assert_allclose(pixel[0], scene.keypoints[0, columns.numpy(), :2].mean(axis=0), atol=1e-6)
    front = Rotation.from_rotvec(start.pose[0].numpy()).apply([0.0, 0.0, 1.0])
    towards = scene.camera.center - placed
    assert front @ towards / np.linalg.norm(towards) > 0.99
    # the truth stands 3 m away; the depth from the keypoints' spread is close
    assert abs(scene.camera.to_camera(placed[None])[0, 2] - 3.0) < 0.15


def test_sequence_fit_recovers_the_joints_each_frame_starting_from_the_previous_one(
    scene: Scene, small_body: BodyModel, monkeypatch
) -> None:
    calls: list[tuple[FrameState, FrameState, bool]] = []
    real = pose_module.fit_frame

    def recording(problem, start, rounds, *, fit_shape, keypoints_first=False):
        result = real(problem, start, rounds, fit_shape=fit_shape, keypoints_first=keypoints_first)
        calls.append((start, result, fit_shape))
        return result

    monkeypatch.setattr(pose_module, "fit_frame", recording)
    truth = _true_state(scene, small_body, 0)
    noise = 0.15 * torch.randn(
        small_body.num_joints, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    start = replace(
        truth, pose=truth.pose + noise, translation=torch.tensor([0.04, -0.03, 0.05], dtype=torch.float64)
    )
    before = (pose_module.world_points(small_body, start)[1] - scene.joints[0]).norm(dim=1).mean()
    fit = fit_poses(small_body, scene.camera, scene.keypoints, scene.masks, config=FAST, start=start)

    # frame 0, frame 1 (shape free), frame 0 again with the final shape, then frame 2
    assert [c[2] for c in calls] == [True, True, False, False]
    assert torch.equal(calls[0][0].pose, start.pose)
    assert torch.equal(calls[1][0].pose, calls[0][1].pose)  # frame 1 starts where frame 0 ended
    assert torch.equal(calls[2][0].pose, calls[0][1].pose) and torch.equal(
        calls[2][0].shape, calls[1][1].shape
    )
    assert torch.equal(calls[3][0].pose, calls[1][1].pose)  # frame 2 from frame 1
    assert torch.equal(fit.poses[0], calls[2][1].pose) and torch.equal(fit.poses[2], calls[3][1].pose)

    error = (fit.joints(small_body) - scene.joints).norm(dim=-1).mean(dim=1)
    # measured: 125 mm at the start; 11-19 mm after, keypoints 0.3-0.4 px off, chamfer 0.7 px
    assert float(before) > 0.1 and (error < float(before) / 4).all()
    assert (fit.keypoint_px < 1.0).all() and (fit.silhouette_px < 1.5).all()
    assert abs(fit.scale - 1.0) < 0.02


def test_bad_sequences_are_refused_before_fitting(scene: Scene, small_body: BodyModel) -> None:
    with pytest.raises(ShapeError, match="3 frames of keypoints but 2 masks"):
        fit_poses(small_body, scene.camera, scene.keypoints, scene.masks[:2])
    with pytest.raises(ShapeError, match=r"keypoints must have shape \(frames, 17, 3\)"):
        fit_poses(small_body, scene.camera, scene.keypoints[:, :12], scene.masks)
    with pytest.raises(ShapeError, match=r"masks must be \(frames, 320, 240\) bool"):
        fit_poses(small_body, scene.camera, scene.keypoints, scene.masks[:, :100])
    empty = scene.masks.copy()
    empty[1] = False
    with pytest.raises(ShapeError, match="silhouette mask of frame 1 is empty"):
        fit_poses(small_body, scene.camera, scene.keypoints, empty)
