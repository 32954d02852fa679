"""Step 1 of Alldieck et al. 2018 (Sec. 3.1): per frame, the body's pose fitted to 2D keypoints
and the silhouette, each frame starting from the previous frame's result; the shape and a global
scale are fitted over the first frames only, then held.

The model in the world: ``x = s * body(pose, shape) + translation`` (scale about the body's
origin, near the pelvis). Per frame the energy (pixels^2; weights in :class:`PoseConfig`) is

- keypoints: ``sum_k c_k sigma^2 rho(|pi(J_k) - x_k|)``, ``rho`` Geman-McClure
  (:func:`~edgevision.recon3d.rays.geman_mcclure`), ``c_k`` the detection confidences;
- silhouette: the symmetric chamfer of :mod:`edgevision.recon3d.silhouette_fit`, each side a
  mean of ``sigma^2 rho`` over its points;
- pose prior: ``sum ||theta_j||^2`` over the joints below the root (an L2 prior towards the rest
  pose, MakeHuman's A-pose), and a hinge on knee and elbow hyperextension: the component of
  ``theta_j`` along the joint's flexion axis may not straighten the joint past straight, i.e.
  not below minus its bend at rest (knees: +x, the body's left axis, which swings the shin
  backwards; elbows: upper arm x forearm at rest);
- over the first frames: ``||beta||^2`` and ``(log s)^2``. One camera cannot tell a larger
  person further away from a smaller one nearer: the scale prior is strong, and picks the
  template's height (1.67 m at ``s = 1``) unless the data insist; the shape's ``size``
  coefficient, the same freedom again, is held at its start (0).

Turning people: the global orientation has a front/back ambiguity (a person seen from behind
projects its limbs almost like one seen from the front, mirrored); a fit from scratch may land
on the wrong side. The sequence must start with the person facing the camera (frame 0 is
initialised so), and each frame starts from the previous one: in small steps the fit follows the
turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera
from edgevision.recon3d.keypoints import COCO17, KeypointLayout, predict_keypoints, project
from edgevision.recon3d.rays import geman_mcclure
from edgevision.recon3d.silhouette_fit import SilhouetteTarget, contour_vertices
from edgevision.recon3d.skinning import (
    apply_transforms,
    axis_angle_to_matrix,
    blend_transforms,
    bone_transforms,
)
from edgevision.validation import check_integer, check_number


@dataclass(frozen=True)
class PoseConfig:
    """Weights and schedule of the pose fit (energies in pixels^2)."""

    keypoint_sigma: float = 100.0  # px: Geman-McClure scale of the keypoint term (SMPLify's)
    silhouette_sigma: float = 20.0  # px: Geman-McClure scale of the silhouette distances
    silhouette_weight: float = 20.0  # each side's mean distance counts as this many keypoints
    pose_prior_weight: float = 50.0  # per rad^2: a joint 0.3 rad off the rest pose costs 4.5 px^2
    hinge_weight: float = 1e4  # per rad^2 of hyperextension
    shape_prior_weight: float = 10.0  # per unit beta^2 (beta = 1: +10 % size or girth)
    scale_prior_weight: float = 1e4  # per (log s)^2: 4 % off costs 16 px^2
    shape_frames: int = 4  # frames over which shape and scale are free (then held)
    rounds: int = 3  # contour refreshes per frame, each followed by an L-BFGS run
    first_rounds: int = 6  # the same for frame 0, which starts from the rest pose
    iterations: int = 15  # L-BFGS iterations per round

    def __post_init__(self) -> None:
        for name in ("keypoint_sigma", "silhouette_sigma"):
            check_number(name, getattr(self, name), 0.0, float("inf"), low_open=True, high_open=True)
        for name in ("silhouette_weight", "pose_prior_weight", "hinge_weight"):
            check_number(name, getattr(self, name), 0.0, float("inf"), high_open=True)
        for name in ("shape_prior_weight", "scale_prior_weight"):
            check_number(name, getattr(self, name), 0.0, float("inf"), low_open=True, high_open=True)
        for name in ("shape_frames", "rounds", "first_rounds", "iterations"):
            check_integer(name, getattr(self, name), 0)


@dataclass(frozen=True)
class FrameState:
    """Where a frame's fit starts or ended: pose ``(J, 3)`` axis-angle, translation ``(3,)``
    metres, shape ``(S,)``, scale (a float; a 0-d tensor inside the fit)."""

    pose: torch.Tensor
    translation: torch.Tensor
    shape: torch.Tensor
    scale: float | torch.Tensor


@dataclass(frozen=True)
class PoseFit:
    """The fitted sequence: poses ``(T, J, 3)``, translations ``(T, 3)``, the held shape ``(S,)``
    and scale; per frame the residuals in pixels: ``keypoint_px`` ``(T,)`` the confidence-weighted
    mean reprojection error of the predicted keypoints, ``silhouette_px`` ``(T,)`` the symmetric
    chamfer (mean of the two directions' mean distances)."""

    poses: torch.Tensor
    translations: torch.Tensor
    shape: torch.Tensor
    scale: float
    keypoint_px: np.ndarray
    silhouette_px: np.ndarray

    def joints(self, body: BodyModel) -> torch.Tensor:
        """``(T, J, 3)`` the fitted joints in the world, metres."""
        return torch.stack(
            [
                world_points(body, FrameState(pose, translation, self.shape, self.scale))[1]
                for pose, translation in zip(self.poses, self.translations)
            ]
        ).detach()


def world_points(
    body: BodyModel, state: FrameState, vertices: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(V, 3)`` vertices (only those indexed by ``vertices`` when given: the fit needs
    the contour's few hundred, and skinning every vertex is most of an energy's cost) and the
    ``(J, 3)`` joints of ``state`` in the world, metres. Posing as :meth:`BodyModel.forward`."""
    chosen = slice(None) if vertices is None else vertices
    canonical = body.template[chosen] + torch.einsum("s,svc->vc", state.shape, body.shape_dirs[:, chosen])
    rest_joints = body.joints + torch.einsum("s,sjc->jc", state.shape, body.joint_shape_dirs)
    bones = bone_transforms(axis_angle_to_matrix(state.pose), rest_joints, body.parents)
    posed = apply_transforms(blend_transforms(body.weights[chosen], bones), canonical)
    joints = apply_transforms(bones, rest_joints)
    return state.scale * posed + state.translation, state.scale * joints + state.translation


class FrameProblem:
    """The energy of one frame: its keypoints ``(K, 3)`` in ``layout`` and its mask."""

    def __init__(
        self,
        body: BodyModel,
        camera: Camera,
        keypoints: np.ndarray,
        mask: np.ndarray,
        layout: KeypointLayout,
        config: PoseConfig,
    ) -> None:
        dtype = body.template.dtype
        self.body, self.camera, self.config = body, camera, config
        columns, self.joint_indices = layout.predicted(body.bone_names)
        observed = torch.as_tensor(keypoints, dtype=dtype)[columns]
        self.targets, self.confidences = observed[:, :2], observed[:, 2]
        self.silhouette = SilhouetteTarget(mask, dtype)
        self.hinges = _flexion_axes(body)
        self.contour = torch.zeros(0, dtype=torch.int64)

    def refresh_contour(self, state: FrameState) -> None:
        """Re-find the contour vertices of the model in ``state`` (rendered, no gradient)."""
        with torch.no_grad():
            vertices, _ = world_points(self.body, state)
        self.contour = torch.as_tensor(
            contour_vertices(vertices.numpy(), self.body.faces.numpy(), self.camera)
        )

    def keypoint_errors(self, joints: torch.Tensor) -> torch.Tensor:
        """``(K',)`` pixel distances of the predicted keypoints to the observed ones."""
        return (predict_keypoints(joints, self.camera, self.joint_indices) - self.targets).norm(dim=1)

    def silhouette_distances(self, contour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model -> image and image -> model distances (pixels) of the ``(M, 3)`` world
        positions of the contour vertices (``world_points(body, state, self.contour)``)."""
        pixels = project(contour, self.camera)
        return self.silhouette.model_to_image(pixels), self.silhouette.image_to_model(pixels)

    def energy(self, state: FrameState, use_silhouette: bool) -> torch.Tensor:
        """The frame's data terms and pose prior (module docstring), pixels^2."""
        contour, joints = world_points(self.body, state, self.contour)
        energy = self.keypoint_energy(joints) + self.pose_prior(state.pose)
        if use_silhouette:
            energy = energy + self.silhouette_energy(contour)
        return energy

    def keypoint_energy(self, joints: torch.Tensor) -> torch.Tensor:
        """``sum_k c_k sigma^2 rho(error_k)`` of the world ``(J, 3)`` joints, pixels^2."""
        sigma = self.config.keypoint_sigma
        return (self.confidences * sigma**2 * geman_mcclure(self.keypoint_errors(joints), sigma)).sum()

    def silhouette_energy(self, contour: torch.Tensor) -> torch.Tensor:
        """The weighted robust chamfer of the ``(M, 3)`` contour vertices, pixels^2."""
        sigma, weight = self.config.silhouette_sigma, self.config.silhouette_weight
        sides = self.silhouette_distances(contour)
        return sum(weight * sigma**2 * geman_mcclure(side, sigma).mean() for side in sides)

    def pose_prior(self, pose: torch.Tensor) -> torch.Tensor:
        """The L2 prior on the ``(J, 3)`` pose below the root plus the knee and elbow hinge."""
        joints, axes, bends = self.hinges
        extension = torch.relu(-(pose[joints] * axes).sum(dim=1) - bends)
        return (
            self.config.pose_prior_weight * (pose[1:] ** 2).sum()
            + self.config.hinge_weight * (extension**2).sum()
        )

    def residuals(self, state: FrameState) -> tuple[float, float]:
        """The frame's mean keypoint error and symmetric chamfer, pixels."""
        with torch.no_grad():
            self.refresh_contour(state)
            contour, joints = world_points(self.body, state, self.contour)
            errors = self.keypoint_errors(joints)
            weight = self.confidences.sum()
            keypoint = float((errors * self.confidences).sum() / weight) if weight > 0 else float("nan")
            chamfer = [float(side.mean()) for side in self.silhouette_distances(contour)]
        return keypoint, 0.5 * sum(chamfer)


def _flexion_axes(body: BodyModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The knees and elbows ``(H,)``, their unit flexion axes ``(H, 3)`` (module docstring) and
    ``(H,)`` how far each is bent at rest about its axis, radians (MakeHuman's A-pose bends the
    elbows by ~47 degrees): the most a pose may straighten it."""
    names = list(body.bone_names)
    indices, axes, bends = [], [], []
    for side in ("L", "R"):
        for upper, middle, lower, axis in (
            ("upperleg01", "lowerleg01", "foot", body.joints.new_tensor([1.0, 0.0, 0.0])),
            ("upperarm01", "lowerarm01", "wrist", None),
        ):
            first, joint, last = (names.index(f"{bone}.{side}") for bone in (upper, middle, lower))
            above = body.joints[joint] - body.joints[first]
            below = body.joints[last] - body.joints[joint]
            if axis is None:
                axis = torch.linalg.cross(above, below)
                axis = axis / axis.norm()
            # the signed angle from the upper bone to the lower one about the axis
            bends.append(torch.atan2(torch.linalg.cross(above, below) @ axis, above @ below))
            indices.append(joint)
            axes.append(axis)
    return torch.tensor(indices), torch.stack(axes), torch.stack(bends)


def fit_frame(
    problem: FrameProblem, start: FrameState, rounds: int, *, fit_shape: bool, keypoints_first: bool = False
) -> FrameState:
    """Fit one frame from ``start``. First (as SMPLify does) the global orientation and
    translation alone, one round, so that the turn between frames is taken by the root and not
    by twisted limbs; then ``rounds`` times: refresh the contour and run L-BFGS on the whole pose
    and translation (and the shape and log-scale when ``fit_shape``). With ``keypoints_first``
    (frame 0 from the rest pose, whose contour is far from the truth) that first stage fits the
    keypoints only."""
    config = problem.config
    root = start.pose[:1].detach().clone().requires_grad_(True)
    limbs = start.pose[1:].detach().clone().requires_grad_(True)
    translation = start.translation.detach().clone().requires_grad_(True)
    shape = start.shape.detach().clone().requires_grad_(fit_shape)
    # The body's "size" coefficient is the global scale again: it stays where it started.
    free = torch.tensor([name != "size" for name in problem.body.shape_names])
    held_shape = start.shape.detach()
    log_scale = torch.tensor(float(np.log(start.scale)), dtype=root.dtype, requires_grad=fit_shape)

    def state() -> FrameState:
        return FrameState(
            torch.cat([root, limbs]), translation, torch.where(free, shape, held_shape), torch.exp(log_scale)
        )

    def minimise(parameters: list[torch.Tensor], rounds: int, use_silhouette: bool) -> None:
        # One optimiser for all rounds: its curvature memory outlives a contour refresh, which
        # changes the energy only a little.
        optimiser = torch.optim.LBFGS(parameters, max_iter=config.iterations, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            energy = problem.energy(state(), use_silhouette)
            if fit_shape:
                energy = energy + config.shape_prior_weight * (shape**2).sum()
                energy = energy + config.scale_prior_weight * log_scale**2
            energy.backward()
            return energy

        for _ in range(rounds):
            with torch.no_grad():
                problem.refresh_contour(state())
            optimiser.step(closure)

    minimise([root, translation], 1, use_silhouette=not keypoints_first)
    minimise([root, limbs, translation] + ([shape, log_scale] if fit_shape else []), rounds, True)
    with torch.no_grad():
        fitted = state()
    return FrameState(fitted.pose, fitted.translation.detach(), fitted.shape.detach(), float(fitted.scale))


def initial_state(
    body: BodyModel, camera: Camera, keypoints: np.ndarray, layout: KeypointLayout
) -> FrameState:
    """Frame 0's start: the rest pose turned to face the camera (world up: the image's up),
    placed so that its keypoints' centroid lies on the ray of the observed centroid, at the
    depth where their vertical spread matches the observed one (pinhole similar triangles)."""
    columns, joint_indices = layout.predicted(body.bone_names)
    observed = keypoints[columns.numpy()]
    seen = observed[:, 2] > 0
    if seen.sum() < 2:
        raise ConfigError("frame 0 needs at least two detected keypoints to place the body")
    rest = body.joints[joint_indices].detach().numpy()[seen]
    pixels = observed[seen, :2]
    spread_px = np.ptp(pixels[:, 1])
    if spread_px <= 0:
        raise ConfigError("frame 0's keypoints have no vertical spread to place the body by")
    depth = camera.fy * np.ptp(rest[:, 1]) / spread_px
    _, direction = camera.pixel_rays(pixels.mean(axis=0, keepdims=True))
    up = -camera.R[1]
    front = -direction[0] - (-direction[0] @ up) * up
    front /= np.linalg.norm(front)
    rotation = np.column_stack([np.cross(up, front), up, front])  # the body's x, y, z in the world
    centre = camera.center + direction[0] * depth / (direction[0] @ camera.R[2])
    # The root turns about its joint r: a rest point m lands at R (m - r) + r + translation.
    root = body.joints[0].detach().numpy()
    translation = centre - rotation @ (rest.mean(axis=0) - root) - root
    dtype = body.template.dtype
    pose = torch.zeros(body.num_joints, 3, dtype=dtype)
    pose[0] = torch.as_tensor(Rotation.from_matrix(rotation).as_rotvec(), dtype=dtype)
    shape = torch.zeros(len(body.shape_names), dtype=dtype)
    return FrameState(pose, torch.as_tensor(translation, dtype=dtype), shape, 1.0)


def fit_poses(
    body: BodyModel,
    camera: Camera,
    keypoints: np.ndarray,
    masks: np.ndarray,
    *,
    layout: KeypointLayout = COCO17,
    config: PoseConfig = PoseConfig(),
    start: FrameState | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PoseFit:
    """Fit the body to a sequence (Sec. 3.1): frame ``t`` starts from frame ``t - 1``'s result.

    Args:
        body: the body (a decimated one is much faster).
        camera: the sequence's camera.
        keypoints: ``(T, K, 3)`` ``x, y, confidence`` in ``layout``
            (:func:`~edgevision.recon3d.keypoints.load_keypoints`).
        masks: ``(T, H, W)`` bool silhouettes, ``H x W`` the camera's image size.
        start: frame 0's start; default :func:`initial_state` (facing the camera).
        progress: called with ``(frame, frames)`` after each frame.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    masks = np.asarray(masks)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (len(layout), 3):
        raise ShapeError(f"keypoints must have shape (frames, {len(layout)}, 3), got {keypoints.shape}")
    if masks.dtype != bool or masks.shape[1:] != (camera.height, camera.width) or masks.ndim != 3:
        raise ShapeError(
            f"masks must be (frames, {camera.height}, {camera.width}) bool, "
            f"got {masks.shape} of {masks.dtype}"
        )
    if len(masks) != len(keypoints) or not len(masks):
        raise ShapeError(f"{len(keypoints)} frames of keypoints but {len(masks)} masks")
    empty = np.flatnonzero(~masks.any(axis=(1, 2)))
    if len(empty):
        raise ShapeError(f"the silhouette mask of frame {empty[0]} is empty ({len(empty)} empty masks)")
    problems = [FrameProblem(body, camera, k, m, layout, config) for k, m in zip(keypoints, masks)]
    state = initial_state(body, camera, keypoints[0], layout) if start is None else start
    states: list[FrameState] = []
    for frame, problem in enumerate(problems):
        from_rest = frame == 0 and start is None
        rounds = config.first_rounds if from_rest else config.rounds
        state = fit_frame(
            problem, state, rounds, fit_shape=frame < config.shape_frames, keypoints_first=from_rest
        )
        states.append(state)
        if frame == config.shape_frames - 1:
            # The earlier shape frames were fitted while the shape still moved: refit them with
            # the final one, so that every frame shares one shape and scale.
            for earlier in range(frame):
                held = replace(states[earlier], shape=state.shape, scale=state.scale)
                states[earlier] = fit_frame(problems[earlier], held, config.rounds, fit_shape=False)
        if progress is not None:
            progress(frame, len(problems))
    residuals = [problem.residuals(state) for problem, state in zip(problems, states)]
    return PoseFit(
        poses=torch.stack([s.pose for s in states]),
        translations=torch.stack([s.translation for s in states]),
        shape=state.shape,
        scale=state.scale,
        keypoint_px=np.array([r[0] for r in residuals]),
        silhouette_px=np.array([r[1] for r in residuals]),
    )
