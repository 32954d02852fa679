"""A synthetic turning person with known ground truth: the benchmark of the consensus shape
(Alldieck et al. 2018, Sec. 5 evaluate on scans; here the truth is exact by construction).

The person: the body with a few non-zero shape coefficients and smooth offsets ``D`` along the
canonical normals (a loose shirt on the torso, trousers on the thighs, a cap of hair, and a
small smooth random undulation that makes ``D`` left/right ASYMMETRIC unless
``symmetric=True``), at most ``max_offset`` (3 cm by default). The sequence: one full turn about
the vertical axis in the body's A-pose, with small arm, leg and spine swings. The camera: a
pinhole 2.8 m in front of the body's centre, portrait 480 x 640 pixels (OpenCV convention,
pixel centres at integers). Per frame: pose, posed vertices and joints, 2D keypoints (the
projected joints), the silhouette mask (the projected triangles filled) and its boundary pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from edgevision.recon3d._pinhole import Camera
from edgevision.recon3d._raster import silhouette_boundary, silhouette_mask
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.mesh import diffuse, mean_edge_length, uniform_laplacian
from edgevision.validation import check_integer, check_number

# Offset amplitudes along the normal, metres, drawn uniformly in these ranges per scene.
SHIRT_RANGE = (0.010, 0.025)  # torso bones
TROUSERS_RANGE = (0.005, 0.015)  # thighs
HAIR_RANGE = (0.015, 0.030)  # the head above HAIR_LINE
HAIR_LINE = 0.02  # metres above the head joint where the hair starts, growing over HAIR_RISE
HAIR_RISE = 0.08
UNDULATION = 0.008  # metres: the random, asymmetric part's largest amplitude
OFFSET_SCALE = 0.08  # metres: the length over which D varies along the surface
SHAPE_RANGE = 0.6  # |beta_k| drawn uniformly below this: up to +-6 % of size, height, girths
LIMB_SWING = (0.04, 0.12)  # radians: each swinging joint's amplitude range
SWINGING = ("upperarm01", "lowerarm01", "upperleg01", "lowerleg01", "spine03")
SWING_CYCLES = 2  # limb swings per turn


@dataclass(frozen=True)
class SceneNoise:
    """Degradations of the observations (the ground truth is untouched).

    keypoint_px: std of Gaussian noise on each keypoint coordinate, pixels.
    boundary_px: std of Gaussian jitter on each boundary pixel's coordinates, pixels.
    mask_grow: dilate (> 0) or erode (< 0) the mask by this many pixels (3x3 cross steps) before
        its boundary is taken: a segmentation that is too fat or too thin.
    """

    keypoint_px: float = 0.0
    boundary_px: float = 0.0
    mask_grow: int = 0

    def __post_init__(self) -> None:
        check_number("keypoint_px", self.keypoint_px, 0.0, 100.0)
        check_number("boundary_px", self.boundary_px, 0.0, 100.0)
        check_integer("mask_grow", self.mask_grow, -20, 20)


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A rendered turning sequence and its ground truth (the body's dtype; metres, pixels).

    shape ``(S,)``, offsets ``(V, 3)`` D; canonical ``(V, 3)`` the true canonical vertices
    ``template + S beta + D``; camera; poses ``(F, J, 3)`` axis-angle; vertices
    ``(F, V, 3)`` and joints ``(F, J, 3)`` posed; clean_masks ``(F, H, W)`` bool; the
    observations (with ``noise``): keypoints ``(F, J, 2)``, masks ``(F, H, W)`` bool and
    boundaries, per frame an ``(N_f, 2)`` tensor of ``(x, y)`` boundary pixels.
    """

    shape: torch.Tensor
    offsets: torch.Tensor
    canonical: torch.Tensor
    camera: Camera
    poses: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    clean_masks: np.ndarray = field(repr=False)
    noise: SceneNoise
    keypoints: torch.Tensor
    masks: np.ndarray = field(repr=False)
    boundaries: tuple[torch.Tensor, ...] = field(repr=False)

    @property
    def num_frames(self) -> int:
        return len(self.poses)


def front_camera(
    width: int = 480,
    height: int = 640,
    focal: float = 800.0,
    distance: float = 2.8,
    dtype: torch.dtype = torch.float64,
) -> Camera:
    """The camera ``distance`` metres in front (+z) of the body's origin, looking
    at it, image up = the body's +y; the principal point at the image's centre."""
    K = torch.tensor(
        [[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]], dtype=dtype
    )
    # Rows: the camera's axes in the world. Facing the body, its left (+x) is on the image's
    # right, its up (+y) is the image's -y, and the camera looks along -z (x cross y = z).
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=dtype))
    return Camera(K, R, torch.tensor([0.0, 0.0, distance], dtype=dtype), width, height)


def _vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(V, 3)`` unit area-weighted vertex normals (outward: MakeHuman's faces turn
    counter-clockwise seen from outside)."""
    corners = vertices[faces]
    weighted = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), weighted.repeat_interleave(3, 0))
    return normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _bone_mask(body: BodyModel, prefixes: tuple[str, ...]) -> torch.Tensor:
    """``(V,)`` the skinning weight of each vertex on the bones whose names start with one of
    ``prefixes`` (``upperleg01`` covers ``.L`` and ``.R``)."""
    columns = [j for j, name in enumerate(body.bone_names) if name.split(".")[0] in prefixes]
    return body.weights[:, columns].sum(1)


def smooth_offsets(
    body: BodyModel,
    shape: torch.Tensor,
    generator: torch.Generator,
    *,
    max_offset: float = 0.03,
    symmetric: bool = False,
) -> torch.Tensor:
    """Smooth offsets ``D`` ``(V, 3)`` of clothing and hair along the normals of the canonical
    body of ``shape``, at most ``max_offset`` metres (see the module docstring).

    The amplitude field (a shirt, trousers, hair by skinning weights, plus Gaussian noise at
    every vertex) is diffused over the mesh until it varies over about ``OFFSET_SCALE``; the
    diffusion runs as many steps as the mesh's edge length asks, so a decimated body gets the
    same smoothness in metres as the full one."""
    check_number("max_offset", max_offset, 0.0, 0.2, low_open=True)
    vertices, joints = body.canonical(shape)
    dtype = vertices.dtype

    def uniform(bounds: tuple[float, float]) -> float:
        return bounds[0] + (bounds[1] - bounds[0]) * float(torch.rand((), generator=generator, dtype=dtype))

    head_height = joints[body.bone_names.index("head"), 1]
    hair = ((vertices[:, 1] - head_height - HAIR_LINE) / HAIR_RISE).clamp(0, 1)
    amplitude = (
        uniform(SHIRT_RANGE) * _bone_mask(body, ("root", "spine05", "spine03", "spine01"))
        + uniform(TROUSERS_RANGE) * _bone_mask(body, ("upperleg01",))
        + uniform(HAIR_RANGE) * _bone_mask(body, ("head",)) * hair
    )
    laplacian = uniform_laplacian(body.faces, body.num_vertices, dtype=dtype)
    steps = math.ceil(2 * (OFFSET_SCALE / mean_edge_length(vertices, body.faces)) ** 2)
    noise = diffuse(torch.randn(body.num_vertices, 1, generator=generator, dtype=dtype), laplacian, steps)
    amplitude = amplitude[:, None] + UNDULATION * noise / noise.abs().max()
    offsets = diffuse(amplitude, laplacian, steps) * _vertex_normals(vertices, body.faces)
    if symmetric:
        offsets = 0.5 * (offsets + offsets[body.mirror] * offsets.new_tensor([-1.0, 1.0, 1.0]))
    return offsets * min(1.0, max_offset / float(offsets.norm(dim=1).max()))


def turntable_poses(body: BodyModel, frames: int, generator: torch.Generator) -> torch.Tensor:
    """``(F, J, 3)`` axis-angle poses: frame ``k`` turned by ``2 pi k / F`` about the vertical
    (the root), its ``SWINGING`` joints each swinging about a random axis by a random amplitude
    in ``LIMB_SWING``, ``SWING_CYCLES`` times per turn, with random phases."""
    check_integer("frames", frames, 1)
    dtype = body.joints.dtype
    poses = torch.zeros(frames, body.num_joints, 3, dtype=dtype)
    turn = 2 * math.pi * torch.arange(frames, dtype=dtype) / frames
    poses[:, 0, 1] = turn
    low, high = LIMB_SWING
    for j, name in enumerate(body.bone_names):
        if name.split(".")[0] not in SWINGING:
            continue
        axis = torch.randn(3, generator=generator, dtype=dtype)
        amplitude = low + (high - low) * torch.rand((), generator=generator, dtype=dtype)
        phase = 2 * math.pi * torch.rand((), generator=generator, dtype=dtype)
        poses[:, j] = (amplitude * torch.sin(SWING_CYCLES * turn + phase))[:, None] * axis / axis.norm()
    return poses


def observe(
    masks: np.ndarray, joints_px: torch.Tensor, noise: SceneNoise, generator: torch.Generator
) -> tuple[torch.Tensor, np.ndarray, tuple[torch.Tensor, ...]]:
    """The observations of clean ``(F, H, W)`` masks and ``(F, J, 2)`` projected joints under
    ``noise``: keypoints ``(F, J, 2)``, masks, and per frame the ``(N_f, 2)`` boundary pixels."""
    keypoints = joints_px + noise.keypoint_px * torch.randn(
        joints_px.shape, generator=generator, dtype=joints_px.dtype
    )
    if noise.mask_grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        grow = cv2.dilate if noise.mask_grow > 0 else cv2.erode
        masks = np.stack([grow(m.astype(np.uint8), kernel, iterations=abs(noise.mask_grow)) for m in masks])
        masks = masks.astype(bool)
    boundaries = []
    for mask in masks:
        pixels = torch.as_tensor(silhouette_boundary(mask), dtype=joints_px.dtype)
        jitter = torch.randn(pixels.shape, generator=generator, dtype=pixels.dtype)
        boundaries.append(pixels + noise.boundary_px * jitter)
    return keypoints, masks, tuple(boundaries)


def make_scene(
    body: BodyModel,
    seed: int,
    frames: int = 24,
    noise: SceneNoise = SceneNoise(),
    *,
    symmetric: bool = False,
    max_offset: float = 0.03,
    width: int = 480,
    height: int = 640,
    focal: float = 800.0,
) -> SyntheticScene:
    """The scene of ``seed`` (the same for the same seed, body and arguments): a shape, offsets,
    the turning poses, the camera (:func:`front_camera`), the rendered masks and the
    observations under ``noise``. Rendering costs one triangle fill per face per frame."""
    check_integer("frames", frames, 1)
    generator = torch.Generator().manual_seed(seed)
    dtype = body.template.dtype
    shape = SHAPE_RANGE * (2 * torch.rand(len(body.shape_names), generator=generator, dtype=dtype) - 1)
    offsets = smooth_offsets(body, shape, generator, max_offset=max_offset, symmetric=symmetric)
    poses = turntable_poses(body, frames, generator)
    camera = front_camera(width, height, focal, dtype=dtype)
    faces = body.faces.numpy()
    vertices, joints, masks = [], [], []
    for pose in poses:
        posed = body(pose, shape, offsets)
        vertices.append(posed.vertices)
        joints.append(posed.joints)
        masks.append(silhouette_mask(camera.project(posed.vertices).numpy(), faces, width, height))
    joints_px = torch.stack([camera.project(frame) for frame in joints])
    clean_masks = np.stack(masks)
    keypoints, noisy_masks, boundaries = observe(clean_masks, joints_px, noise, generator)
    return SyntheticScene(
        shape=shape,
        offsets=offsets,
        canonical=body.canonical(shape, offsets)[0],
        camera=camera,
        poses=poses,
        vertices=torch.stack(vertices),
        joints=torch.stack(joints),
        clean_masks=clean_masks,
        noise=noise,
        keypoints=keypoints,
        masks=noisy_masks,
        boundaries=boundaries,
    )
