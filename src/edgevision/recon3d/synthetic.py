"""A synthetic turning person with known ground truth: the benchmark of the reconstruction
(Alldieck et al. 2018, Sec. 5 evaluate on scans; here the truth is exact by construction).

The person: the body with a few non-zero shape coefficients and smooth offsets ``D`` along the
canonical normals (a loose shirt on the torso, trousers on the thighs, a cap of hair, and a
small smooth random undulation that makes ``D`` left/right ASYMMETRIC unless
``symmetric=True``), at most ``max_offset`` (3 cm by default), painted with a known colour
(:mod:`edgevision.recon3d.synthetic_paint`). The sequence: one full turn about the vertical axis
in the body's A-pose, with small arm, leg and spine swings. The camera: a pinhole 2.8 m in front
of the body's origin, portrait 480 x 640 pixels (:mod:`edgevision.recon3d.camera`'s
conventions). Per frame, rendered by :func:`edgevision.recon3d.render.render` (unlit: the image
is the paint): the colour image over a static textured background, the silhouette mask, its
boundary points, and the 2D keypoints (the projected joints). :func:`write_scene` writes a scene
as the files ``edgevision reconstruct`` reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from edgevision.data.io import atomic_dir, save_npz, write_image
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera, look_at, save_camera
from edgevision.recon3d.keypoints import COCO17
from edgevision.recon3d.mesh import diffuse, mean_edge_length, uniform_laplacian
from edgevision.recon3d.render import render
from edgevision.recon3d.shading import vertex_normals
from edgevision.recon3d.silhouette import silhouette_edge_points
from edgevision.recon3d.synthetic_paint import background_image, painted_texture, vertex_paint
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
ROUGH_GRAIN = 4.0  # pixels: the correlation length (blur sigma) of a mask's roughness


@dataclass(frozen=True)
class SceneNoise:
    """Degradations of the observations (the ground truth, the images and ``clean_masks`` are
    untouched).

    keypoint_px: std of Gaussian noise on each keypoint coordinate, pixels.
    mask_grow: dilate (> 0) or erode (< 0) the mask by this many pixels (3x3 cross steps): a
        segmentation that is too fat or too thin.
    mask_rough_px: roughen the mask's outline: a smooth random field (``ROUGH_GRAIN`` pixels of
        correlation) of this std, pixels, added to the mask's signed distance before it is
        thresholded again: a ragged segmentation.
    boundary_px: std of Gaussian jitter on each boundary point's coordinates, pixels; it moves
        the ``boundaries`` only (sub-pixel rays for the consensus), not the masks.
    """

    keypoint_px: float = 0.0
    boundary_px: float = 0.0
    mask_grow: int = 0
    mask_rough_px: float = 0.0

    def __post_init__(self) -> None:
        check_number("keypoint_px", self.keypoint_px, 0.0, 100.0)
        check_number("boundary_px", self.boundary_px, 0.0, 100.0)
        check_integer("mask_grow", self.mask_grow, -20, 20)
        check_number("mask_rough_px", self.mask_rough_px, 0.0, 20.0)


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A rendered turning sequence and its ground truth (tensors in the body's dtype; metres,
    pixels, BGR).

    Truth: shape ``(S,)``, offsets ``(V, 3)`` D; canonical ``(V, 3)`` the true canonical
    vertices ``template + S beta + D``; camera; poses ``(F, J, 3)`` axis-angle; vertices
    ``(F, V, 3)`` and joints ``(F, J, 3)`` posed, of the bones ``bone_names``; the paint: texture
    ``(T, T, 3)`` uint8 in the body's UV atlas when the body has UVs, else vertex_colors
    ``(V, 3)`` float64 (the other is None).
    Rendered: background ``(H, W, 3)`` uint8; images ``(F, H, W, 3)`` uint8, the person over the
    background; clean_masks ``(F, H, W)`` bool.
    Observations (with ``noise``): keypoints ``(F, J, 2)`` (the joints, in ``bone_names``'
    order; :attr:`coco_keypoints` in the keypoint file's layout), masks ``(F, H, W)`` bool, and
    boundaries, per frame an ``(N_f, 2)`` tensor of ``(x, y)`` points on the mask's outline
    (:func:`edgevision.recon3d.silhouette.silhouette_edge_points`).
    """

    shape: torch.Tensor
    offsets: torch.Tensor
    canonical: torch.Tensor
    camera: Camera
    poses: torch.Tensor
    vertices: torch.Tensor = field(repr=False)
    joints: torch.Tensor
    bone_names: tuple[str, ...]
    texture: np.ndarray | None = field(repr=False)
    vertex_colors: np.ndarray | None = field(repr=False)
    background: np.ndarray = field(repr=False)
    images: np.ndarray = field(repr=False)
    clean_masks: np.ndarray = field(repr=False)
    noise: SceneNoise
    keypoints: torch.Tensor
    masks: np.ndarray = field(repr=False)
    boundaries: tuple[torch.Tensor, ...] = field(repr=False)

    @property
    def num_frames(self) -> int:
        return len(self.poses)

    @property
    def coco_keypoints(self) -> np.ndarray:
        """``(F, 17, 3)`` float64 ``x, y, confidence`` in the COCO-17 layout of the keypoint file
        (:mod:`edgevision.recon3d.keypoints`): the columns the body predicts are the (noisy)
        keypoints of their joints, confidence 1; the face's columns are 0, confidence 0."""
        columns, joints = COCO17.predicted(self.bone_names)
        coco = np.zeros((self.num_frames, len(COCO17), 3))
        coco[:, columns.numpy(), :2] = self.keypoints[:, joints].double().numpy()
        coco[:, columns.numpy(), 2] = 1.0
        return coco


def front_camera(width: int = 480, height: int = 640, focal: float = 800.0, distance: float = 2.8) -> Camera:
    """The camera ``distance`` metres in front (+z) of the body's origin, looking at it, image
    up = the body's +y (so the body's left, +x, is on the image's right); the principal point at
    the image's centre."""
    rotation, translation = look_at(np.array([0.0, 0.0, distance]), np.zeros(3), np.array([0.0, 1.0, 0.0]))
    return Camera(focal, focal, (width - 1) / 2, (height - 1) / 2, rotation, translation, width, height)


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
    normals = torch.as_tensor(vertex_normals(vertices.numpy(), body.faces.numpy()), dtype=dtype)
    offsets = diffuse(amplitude, laplacian, steps) * normals
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
    ``noise``: keypoints ``(F, J, 2)``, masks, and per frame the ``(N_f, 2)`` boundary points
    (:func:`edgevision.recon3d.silhouette.silhouette_edge_points`: on the outline, not half a
    pixel inside it)."""
    keypoints = joints_px + noise.keypoint_px * torch.randn(
        joints_px.shape, generator=generator, dtype=joints_px.dtype
    )
    if noise.mask_grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        grow = cv2.dilate if noise.mask_grow > 0 else cv2.erode
        masks = np.stack([grow(m.astype(np.uint8), kernel, iterations=abs(noise.mask_grow)) for m in masks])
        masks = masks.astype(bool)
    if noise.mask_rough_px:  # no draws otherwise: the other noises stay those of a smooth mask
        masks = np.stack([_roughen(mask, noise.mask_rough_px, generator) for mask in masks])
    boundaries = []
    for mask in masks:
        pixels = torch.as_tensor(silhouette_edge_points(mask), dtype=joints_px.dtype)
        jitter = torch.randn(pixels.shape, generator=generator, dtype=pixels.dtype)
        boundaries.append(pixels + noise.boundary_px * jitter)
    return keypoints, masks, tuple(boundaries)


def _roughen(mask: np.ndarray, pixels: float, generator: torch.Generator) -> np.ndarray:
    """``mask`` with a ragged outline: its signed distance (pixels, > 0 inside) plus a smooth
    random field of std ``pixels``, thresholded at 0."""
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    field = torch.randn(mask.shape, generator=generator, dtype=torch.float64).numpy()
    field = cv2.GaussianBlur(field, (0, 0), ROUGH_GRAIN)
    return inside - outside + field * (pixels / max(float(field.std()), 1e-12)) > 0


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
    texture_size: int = 1024,
) -> SyntheticScene:
    """The scene of ``seed`` (the same for the same seed, body and arguments; the truth and the
    images do not depend on ``noise``): a shape, offsets, the turning poses, the camera
    (:func:`front_camera`), the rendered images and masks, and the observations under ``noise``.

    The paint reaches the images through the body's UV atlas (a ``texture_size`` texture) when
    the body has UVs (the full body), else through its vertices' colours (a decimated body).
    Rendering costs one z-buffer pass per frame (about 20 ms at 240 x 320 on the decimated body,
    80 ms at 480 x 640 on the full one), the atlas about 2 s at 1024 texels."""
    check_integer("frames", frames, 1)
    check_integer("texture_size", texture_size, 2)
    generator = torch.Generator().manual_seed(seed)
    dtype = body.template.dtype
    shape = SHAPE_RANGE * (2 * torch.rand(len(body.shape_names), generator=generator, dtype=dtype) - 1)
    offsets = smooth_offsets(body, shape, generator, max_offset=max_offset, symmetric=symmetric)
    poses = turntable_poses(body, frames, generator)
    camera = front_camera(width, height, focal)
    background = background_image(width, height, generator)
    faces = body.faces.numpy()
    if len(body.face_uvs) == len(faces):
        texture, vertex_colors = painted_texture(body, texture_size), None
        paint = {"uv": body.uvs.numpy()[body.face_uvs.numpy()], "texture": texture}
    else:
        texture, vertex_colors = None, vertex_paint(body)
        paint = {"vertex_colors": vertex_colors}
    vertices, joints, images, masks = [], [], [], []
    for pose in poses:
        posed = body(pose, shape, offsets)
        seen = render(posed.vertices.numpy(), faces, camera, **paint)
        vertices.append(posed.vertices)
        joints.append(posed.joints)
        images.append(np.where(seen.mask[..., None], seen.image, background))
        masks.append(seen.mask)
    joints_px = torch.stack([torch.as_tensor(camera.project(j.numpy())[0], dtype=dtype) for j in joints])
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
        bone_names=tuple(body.bone_names),
        texture=texture,
        vertex_colors=vertex_colors,
        background=background,
        images=np.stack(images),
        clean_masks=clean_masks,
        noise=noise,
        keypoints=keypoints,
        masks=noisy_masks,
        boundaries=boundaries,
    )


def write_scene(scene: SyntheticScene, folder: str | Path) -> None:
    """Write ``scene`` as the inputs of ``edgevision reconstruct`` and its truth, all or none
    (:func:`edgevision.data.io.atomic_dir`; a folder already there is replaced):

    - ``frames/000.png ...``: the images; ``masks/000.png ...``: the observed masks, 8-bit grey,
      0 or 255 (names zero-padded to 3 digits, more for 1,000+ frames, so they sort in order);
    - ``keypoints.npy``: ``(F, 17, 3)`` :attr:`SyntheticScene.coco_keypoints`;
    - ``camera.json``: :func:`edgevision.recon3d.camera.save_camera`; ``background.png``;
    - ``truth.npz``: ``shape (S,)``, ``offsets (V, 3)``, ``canonical (V, 3)``, ``poses (F, J, 3)``,
      ``joints (F, J, 3)`` posed, ``bone_names (J,)``, and ``texture`` or ``vertex_colors``.

    The boundary jitter of ``scene.noise`` is not in the files (it moves no mask pixel).

    Raises:
        InputFileError: a file is in the way of ``folder``, or it cannot be written.
    """
    digits = max(3, len(str(scene.num_frames - 1)))
    truth = {
        name: getattr(scene, name).numpy() for name in ("shape", "offsets", "canonical", "poses", "joints")
    }
    truth["bone_names"] = np.array(scene.bone_names)
    paint = "texture" if scene.texture is not None else "vertex_colors"
    truth[paint] = getattr(scene, paint)
    with atomic_dir(folder) as staging:
        for name, images in (("frames", scene.images), ("masks", scene.masks.astype(np.uint8) * 255)):
            (staging / name).mkdir()
            for index, image in enumerate(images):
                write_image(staging / name / f"{index:0{digits}d}.png", image)
        np.save(staging / "keypoints.npy", scene.coco_keypoints)
        save_camera(scene.camera, staging / "camera.json")
        write_image(staging / "background.png", scene.background)
        save_npz(staging / "truth.npz", **truth)
