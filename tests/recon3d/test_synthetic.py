"""The synthetic turning person: deterministic per seed; keypoints that are the projected joints
(and the COCO-17 file's columns); masks and boundary points on the projected body's outline
(checked against a brute-force point-in-triangle test, not the rasteriser); colour frames that
are the paint at the surface point each pixel shows, over a textured background; smooth offsets of
the promised size and symmetry; noise as asked; a scene written to disk reads back equal."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from edgevision.data.io import read_image
from edgevision.errors import ConfigError, InputFileError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import load_camera
from edgevision.recon3d.keypoints import COCO17, load_keypoints
from edgevision.recon3d.mesh import uniform_laplacian
from edgevision.recon3d.regularizers import symmetry_term
from edgevision.recon3d.render import render
from edgevision.recon3d.silhouette import silhouette_boundary
from edgevision.recon3d.synthetic import (
    SceneNoise,
    SyntheticScene,
    front_camera,
    make_scene,
    observe,
    smooth_offsets,
    write_scene,
)
from edgevision.recon3d.synthetic_paint import paint

SMALL = {"frames": 6, "width": 240, "height": 320, "focal": 400.0}
NEIGHBOURS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])


@pytest.fixture(scope="module")
def scene(small_body: BodyModel) -> SyntheticScene:
    return make_scene(small_body, seed=5, **SMALL)


def _project(points: torch.Tensor, scene: SyntheticScene) -> np.ndarray:
    """A pinhole projection written out, independent of the camera's own."""
    camera = scene.camera
    x, y, z = (points.numpy() @ camera.R.T + camera.t).T
    return np.column_stack([camera.fx * x / z + camera.cx, camera.fy * y / z + camera.cy])


def _inside_any(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N,) whether each (N, 2) point is in (or on an edge of) one of the (F, 3, 2) triangles:
    brute force over every triangle."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    inside = np.ones((len(points), len(triangles)), dtype=bool)
    for p, q in ((a, b), (b, c), (c, a)):
        edge = q - p
        cross = edge[None, :, 0] * (points[:, None, 1] - p[None, :, 1]) - edge[None, :, 1] * (
            points[:, None, 0] - p[None, :, 0]
        )
        inside &= np.sign(area)[None] * cross >= -1e-9
    return (inside & (area != 0)[None]).any(1)


def test_the_same_seed_gives_the_same_scene(small_body: BodyModel, scene: SyntheticScene) -> None:
    again = make_scene(small_body, seed=5, **SMALL)
    for name in ("shape", "offsets", "poses", "vertices", "keypoints"):
        torch.testing.assert_close(getattr(again, name), getattr(scene, name), rtol=0, atol=0)
    for name in ("masks", "images", "background", "vertex_colors"):
        assert np.array_equal(getattr(again, name), getattr(scene, name))
    other = make_scene(small_body, seed=6, **SMALL)
    assert not torch.equal(other.offsets, scene.offsets) and not torch.equal(other.shape, scene.shape)
    assert not np.array_equal(other.background, scene.background)


def test_ground_truth_is_the_body_posed(small_body: BodyModel, scene: SyntheticScene) -> None:
    assert (scene.shape != 0).all() and scene.shape.abs().max() <= 0.6
    expected = small_body.template + torch.einsum("s,svc->vc", scene.shape, small_body.shape_dirs)
    torch.testing.assert_close(scene.canonical, expected + scene.offsets)
    # one full turn about the vertical in equal steps, the next frame would be the first again
    turn = scene.poses[:, 0, 1]
    torch.testing.assert_close(turn, 2 * math.pi * torch.arange(6, dtype=turn.dtype) / 6)
    assert scene.poses[:, 0, [0, 2]].abs().max() == 0
    limbs = scene.poses[:, 1:].norm(dim=-1)
    assert 0.01 < limbs.max() <= 0.12 + 1e-12  # small swings, not a frozen A-pose
    for frame in (0, 4):
        posed = small_body(scene.poses[frame], scene.shape, scene.offsets)
        torch.testing.assert_close(scene.vertices[frame], posed.vertices)
        torch.testing.assert_close(scene.joints[frame], posed.joints)


def test_the_front_camera_faces_the_body_upright() -> None:
    camera = front_camera(240, 320, 400.0, distance=2.8)
    np.testing.assert_allclose(camera.R, np.diag([1.0, -1.0, -1.0]), atol=1e-15)
    np.testing.assert_allclose(camera.center, [0.0, 0.0, 2.8], atol=1e-15)
    assert (camera.cx, camera.cy, camera.fx, camera.fy) == (119.5, 159.5, 400.0, 400.0)
    # the body's left (+x) on the image's right, its up (+y) at the image's top
    pixels, depth = camera.project(np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]))
    np.testing.assert_allclose(pixels, [[119.5 + 400 * 0.1 / 2.8, 159.5], [119.5, 159.5 - 400 * 0.1 / 2.8]])
    np.testing.assert_allclose(depth, [2.8, 2.8])


def test_keypoints_are_the_projected_joints(scene: SyntheticScene) -> None:
    for frame in range(scene.num_frames):
        np.testing.assert_allclose(scene.keypoints[frame].numpy(), _project(scene.joints[frame], scene))
    assert scene.keypoints[:, :, 0].min() > 0 and scene.keypoints[:, :, 0].max() < 240
    assert scene.keypoints[:, :, 1].min() > 0 and scene.keypoints[:, :, 1].max() < 320


def test_coco_keypoints_are_the_named_joints_and_the_face_is_unseen(scene: SyntheticScene) -> None:
    coco = scene.coco_keypoints
    assert coco.shape == (6, 17, 3) and coco.dtype == np.float64
    for column, name in enumerate(COCO17.names):
        if name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
            assert (coco[:, column] == 0).all()  # no face points on the body: confidence 0
            continue
        side, part = name.split("_")
        bone = {"shoulder": "upperarm01", "elbow": "lowerarm01", "wrist": "wrist"}
        bone |= {"hip": "upperleg01", "knee": "lowerleg01", "ankle": "foot"}
        joint = scene.bone_names.index(f"{bone[part]}.{side[0].upper()}")
        for frame in (0, 3):
            np.testing.assert_allclose(
                coco[frame, column, :2], _project(scene.joints[frame, [joint]], scene)[0]
            )
        assert (coco[:, column, 2] == 1).all()
    # facing the camera, the person's left is on the image's right
    left, right = COCO17.names.index("left_wrist"), COCO17.names.index("right_wrist")
    assert coco[0, left, 0] > coco[0, right, 0] + 50


def test_masks_and_boundary_points_follow_the_projected_outline(
    scene: SyntheticScene, small_body: BodyModel
) -> None:
    """On a sample of pixels (the brute force costs pixels x triangles): a pixel is in the mask
    exactly when its centre is in a projected triangle; the boundary points are the mask's
    pixels with a 4-neighbour off it, moved half a pixel towards it, and all such pixels."""
    frame = 2
    triangles = _project(scene.vertices[frame], scene)[small_body.faces.numpy()]
    mask = scene.masks[frame]
    rows, columns = np.nonzero(cv2.dilate(mask.astype(np.uint8), np.ones((5, 5))) > 0)
    sample = np.column_stack([columns, rows])[::29]
    assert np.array_equal(_inside_any(sample.astype(float), triangles), mask[sample[:, 1], sample[:, 0]])

    boundary = scene.boundaries[frame].numpy()
    centres = silhouette_boundary(mask)
    assert len(boundary) == len(centres) > 300
    steps = boundary - centres  # half a pixel towards the background; 0 in a one-pixel-wide part
    lengths = np.linalg.norm(steps, axis=1)
    assert np.minimum(lengths, np.abs(lengths - 0.5)).max() < 1e-12 and (lengths > 0).mean() > 0.95
    beside = centres[::6, None] + NEIGHBOURS[None]
    off = ~_inside_any(beside.reshape(-1, 2).astype(float), triangles).reshape(-1, 4)
    assert _inside_any(centres[::6].astype(float), triangles).all() and off.any(1).all()
    assert ((off * NEIGHBOURS[None, :, 0]).sum(1) * steps[::6, 0] >= 0).all()
    assert ((off * NEIGHBOURS[None, :, 1]).sum(1) * steps[::6, 1] >= 0).all()
    # complete: every mask pixel near the outline with a 4-neighbour off the body is in it
    rim = np.argwhere(mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3))).astype(bool))[:, ::-1]
    outside = (
        ~_inside_any((rim[::3, None] + NEIGHBOURS[None]).reshape(-1, 2).astype(float), triangles)
    ).reshape(-1, 4)
    assert outside.any(1).sum() > 5
    assert {tuple(p) for p in rim[::3][outside.any(1)]} <= {tuple(p) for p in centres}


def _paint_at_pixels(body: BodyModel, scene: SyntheticScene, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Per covered pixel of ``frame`` (row-major): its colour in the image, and the paint at the
    rest-surface point of the face and barycentrics the renderer reports there."""
    seen = render(scene.vertices[frame].numpy(), body.faces.numpy(), scene.camera)
    assert np.array_equal(seen.mask, scene.clean_masks[frame])
    corners = body.faces.numpy()[seen.face_index[seen.mask]]
    barycentrics = seen.barycentrics[seen.mask]
    points = np.einsum("nk,nkc->nc", barycentrics, body.template.numpy()[corners])
    weights = np.einsum("nk,nkj->nj", barycentrics, body.weights.numpy()[corners])
    return scene.images[frame][seen.mask].astype(float), paint(points, weights, body.bone_names)


def test_colour_frames_are_the_paint_over_the_background(
    small_body: BodyModel, scene: SyntheticScene
) -> None:
    """The decimated body has no UVs: its vertices carry the paint. Frame 2 is turned by 120
    degrees: a paint laid on the posed, not the rest, surface would miss by tens of levels."""
    assert scene.texture is None
    np.testing.assert_allclose(
        scene.vertex_colors,
        paint(small_body.template.numpy(), small_body.weights.numpy(), small_body.bone_names),
    )
    assert scene.images.shape == (6, 320, 240, 3) and scene.images.dtype == np.uint8
    for frame in (0, 2):
        image, painted = _paint_at_pixels(small_body, scene, frame)
        error = np.abs(image - painted)
        # linear interpolation of the paint over the decimated body's triangles, then rounding
        # (measured: median 0.9, 90th percentile 4.8; 4.4 and 15 with the paint laid on the
        # canonical surface, 28 and 72 on the posed one in frame 2)
        assert np.median(error) < 1.5 and np.percentile(error, 90) < 6
        off = ~scene.clean_masks[frame]
        assert np.array_equal(scene.images[frame][off], scene.background[off])
    # the paint has structure: colours vary over the body, per channel, by tens of levels
    assert (scene.images[0][scene.clean_masks[0]].std(axis=0) > 20).all()
    # the background is textured: a gradient and noise, not flat
    background = scene.background.astype(float)
    assert (background.std(axis=(0, 1)) > 8).all()
    # noise: the gradient alone changes by 0.2 a pixel; smooth: neighbours differ by a few levels
    assert 1 < np.abs(np.diff(background, axis=1)).mean() < 5
    masks = make_scene(small_body, seed=5, noise=SceneNoise(mask_grow=2), **SMALL)
    assert np.array_equal(masks.images, scene.images) and not np.array_equal(masks.masks, scene.masks)


def test_a_body_with_uvs_is_painted_through_its_texture(full_body: BodyModel) -> None:
    """The full body: the paint reaches the images through the UV atlas (a 256-texel texture
    here: 1 cm texels, sampled bilinearly), so a pixel is the paint up to the texture's
    resolution."""
    scene = make_scene(full_body, seed=0, frames=3, width=120, height=160, focal=200.0, texture_size=256)
    assert scene.vertex_colors is None and scene.texture.shape == (256, 256, 3)
    image, painted = _paint_at_pixels(full_body, scene, 1)
    error = np.abs(image - painted)
    # measured: median 0.3, 95th percentile 1.1 (13 and 74 with the paint on the canonical surface)
    assert np.median(error) < 1 and np.percentile(error, 95) < 3


def test_offsets_are_smooth_bounded_and_asymmetric_unless_asked(small_body: BodyModel) -> None:
    shape = torch.zeros(5, dtype=torch.float64)
    offsets = smooth_offsets(small_body, shape, torch.Generator().manual_seed(0))
    norms = offsets.norm(dim=1)
    assert 0.015 < norms.max() <= 0.03 + 1e-12 and norms.mean() > 0.003
    laplacian = uniform_laplacian(small_body.faces, small_body.num_vertices, dtype=torch.float64)
    # smooth: a vertex differs from its neighbours' mean by far less than the offsets' size
    assert torch.sparse.mm(laplacian, offsets).norm(dim=1).mean() < 0.1 * norms.mean()
    assert symmetry_term(offsets, small_body.mirror) > 1e-3
    symmetric = smooth_offsets(small_body, shape, torch.Generator().manual_seed(0), symmetric=True)
    assert symmetry_term(symmetric, small_body.mirror) < 1e-20
    # the hair: the top of the head moves out most
    top = small_body.template[:, 1].argmax()
    assert norms[top] > 0.5 * norms.max()


def test_noise_degrades_only_the_observations(scene: SyntheticScene) -> None:
    generator = torch.Generator().manual_seed(0)
    clean_keypoints = torch.as_tensor(_project(scene.joints.reshape(-1, 3), scene)).reshape(
        scene.keypoints.shape
    )
    noisy, masks, boundaries = observe(scene.clean_masks, clean_keypoints, SceneNoise(2.0, 1.5, 0), generator)
    assert (noisy - clean_keypoints).std() == pytest.approx(2.0, rel=0.15)
    jitter = torch.cat(boundaries) - torch.cat(scene.boundaries)
    assert jitter.std() == pytest.approx(1.5, rel=0.1) and jitter.mean().abs() < 0.1
    assert np.array_equal(masks, scene.clean_masks)  # jitter moves the points, not the masks
    for grow, sign in ((2, 1), (-2, -1)):
        _, masks, _ = observe(scene.clean_masks, clean_keypoints, SceneNoise(mask_grow=grow), generator)
        assert sign * (masks.sum() - scene.clean_masks.sum()) > 0
        # the grown (shrunk) outline lies outside (inside) the clean mask
        outline = silhouette_boundary(masks[0])
        assert scene.clean_masks[0][outline[:, 1], outline[:, 0]].mean() == (0.0 if grow > 0 else 1.0)
    # a ragged mask: changed only near the outline, by about the roughness, its area kept
    _, rough, _ = observe(scene.clean_masks, clean_keypoints, SceneNoise(mask_rough_px=1.5), generator)
    clean = scene.clean_masks[0].astype(np.uint8)
    changed = rough[0] != scene.clean_masks[0]
    assert changed.sum() > 0.3 * len(silhouette_boundary(scene.clean_masks[0]))
    distance = np.minimum(
        cv2.distanceTransform(clean, cv2.DIST_L2, 5), cv2.distanceTransform(1 - clean, cv2.DIST_L2, 5)
    )
    assert distance[changed].max() < 8 and distance[changed].mean() < 2.5
    assert abs(int(rough[0].sum()) - int(clean.sum())) < 0.03 * clean.sum()
    assert not np.array_equal(rough[0] ^ scene.clean_masks[0], rough[1] ^ scene.clean_masks[1])
    with pytest.raises(ConfigError):
        SceneNoise(keypoint_px=-1.0)
    with pytest.raises(ConfigError):
        SceneNoise(mask_rough_px=float("nan"))


def test_a_written_scene_reads_back_as_the_reconstruct_cli_reads_it(small_body: BodyModel, tmp_path) -> None:
    noise = SceneNoise(keypoint_px=1.0, mask_grow=1)
    scene = make_scene(small_body, seed=2, frames=3, width=120, height=160, focal=200.0, noise=noise)
    folder = tmp_path / "scene"
    folder.mkdir()
    (folder / "stale.txt").write_text("from an earlier run")
    write_scene(scene, folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "background.png",
        "camera.json",
        "frames",
        "keypoints.npy",
        "masks",
        "truth.npz",
    ]
    for index in range(3):
        assert np.array_equal(read_image(folder / "frames" / f"{index:03d}.png"), scene.images[index])
        mask = cv2.imread(str(folder / "masks" / f"{index:03d}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        assert np.array_equal(mask == 255, scene.masks[index])
    assert not np.array_equal(scene.masks, scene.clean_masks)  # the observed masks were written
    assert np.array_equal(read_image(folder / "background.png"), scene.background)
    np.testing.assert_array_equal(load_keypoints(folder / "keypoints.npy", frames=3), scene.coco_keypoints)
    camera = load_camera(folder / "camera.json")
    assert camera.to_dict() == scene.camera.to_dict()
    assert json.loads((folder / "camera.json").read_text())["width"] == 120
    with np.load(folder / "truth.npz", allow_pickle=False) as truth:
        for name in ("shape", "offsets", "canonical", "poses", "joints"):
            np.testing.assert_array_equal(truth[name], getattr(scene, name).numpy())
        assert tuple(truth["bone_names"]) == scene.bone_names
        np.testing.assert_array_equal(truth["vertex_colors"], scene.vertex_colors)
        assert "texture" not in truth
    (tmp_path / "a_file").write_text("")
    with pytest.raises(InputFileError, match="in the way"):
        write_scene(scene, tmp_path / "a_file")
