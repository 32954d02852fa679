"""The synthetic turning person: deterministic per seed, keypoints that are the projected joints,
boundary pixels on the projected body's outline (checked against a brute-force point-in-triangle
test, not the rasteriser), smooth offsets of the promised size and symmetry, noise as asked."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from edgevision.errors import ConfigError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.mesh import uniform_laplacian
from edgevision.recon3d.regularizers import symmetry_term
from edgevision.recon3d.synthetic import SceneNoise, SyntheticScene, make_scene, observe, smooth_offsets

ROUNDING = 0.75  # pixels: cv2.fillConvexPoly covers pixels up to this far outside a triangle
SMALL = {"frames": 6, "width": 240, "height": 320, "focal": 400.0}


@pytest.fixture(scope="module")
def scene(small_body: BodyModel) -> SyntheticScene:
    return make_scene(small_body, seed=5, **SMALL)


def _project(points: torch.Tensor, scene: SyntheticScene) -> torch.Tensor:
    """A pinhole projection written out, independent of the camera's own."""
    camera = scene.camera
    x, y, z = (points @ camera.R.T + camera.t).unbind(1)
    fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
    return torch.stack([fx * x / z + cx, fy * y / z + cy], dim=1)


def _inside_any(points: np.ndarray, triangles: np.ndarray, margin: float) -> np.ndarray:
    """(N,) whether each (N, 2) point is within ``margin`` pixels (along each edge's normal) of
    one of the (F, 3, 2) triangles: brute force over every triangle."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    sign = np.sign(area)[None]
    inside = np.ones((len(points), len(triangles)), dtype=bool)
    for p, q in ((a, b), (b, c), (c, a)):
        edge = q - p
        length = np.linalg.norm(edge, axis=1)[None]
        cross = edge[None, :, 0] * (points[:, None, 1] - p[None, :, 1]) - edge[None, :, 1] * (
            points[:, None, 0] - p[None, :, 0]
        )
        inside &= sign * cross / np.maximum(length, 1e-12) >= -margin
    return (inside & (area != 0)[None]).any(1)


def test_the_same_seed_gives_the_same_scene(small_body: BodyModel, scene: SyntheticScene) -> None:
    again = make_scene(small_body, seed=5, **SMALL)
    for name in ("shape", "offsets", "poses", "vertices", "keypoints"):
        torch.testing.assert_close(getattr(again, name), getattr(scene, name), rtol=0, atol=0)
    assert np.array_equal(again.masks, scene.masks)
    other = make_scene(small_body, seed=6, **SMALL)
    assert not torch.equal(other.offsets, scene.offsets) and not torch.equal(other.shape, scene.shape)


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


def test_keypoints_are_the_projected_joints(small_body: BodyModel, scene: SyntheticScene) -> None:
    for frame in range(scene.num_frames):
        torch.testing.assert_close(scene.keypoints[frame], _project(scene.joints[frame], scene))
    assert scene.keypoints[:, :, 0].min() > 0 and scene.keypoints[:, :, 0].max() < 240
    assert scene.keypoints[:, :, 1].min() > 0 and scene.keypoints[:, :, 1].max() < 320


def test_boundary_pixels_lie_on_the_projected_outline(scene: SyntheticScene, small_body: BodyModel) -> None:
    """On a sample of pixels (the brute force costs pixels x triangles): ROUNDING px of slack
    for the fill's fixed-point corners."""
    faces = small_body.faces.numpy()
    neighbours = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])
    frame = 2
    triangles = _project(scene.vertices[frame], scene).numpy()[faces]
    pixels = scene.boundaries[frame].numpy()
    assert len(pixels) > 300
    sample = pixels[::5]
    # every boundary pixel is on the body, and has a 4-neighbour off it: the outline passes
    # between them
    assert _inside_any(sample, triangles, margin=ROUNDING).all()
    beside = (sample[:, None] + neighbours[None]).reshape(-1, 2)
    assert (~_inside_any(beside, triangles, margin=-ROUNDING)).reshape(-1, 4).any(1).all()
    # and the outline is complete: a pixel clearly on the body with a 4-neighbour clearly off it
    # is a boundary pixel
    mask = scene.masks[frame].astype(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    rim = np.argwhere(mask & ~cv2.erode(mask, cross, iterations=2).astype(bool))[:, ::-1]
    near = rim[::3].astype(float)
    clear = _inside_any(near, triangles, margin=0.0)
    nearby = (near[:, None] + neighbours[None]).reshape(-1, 2)
    outside = (~_inside_any(nearby, triangles, margin=ROUNDING)).reshape(-1, 4).any(1)
    assert (clear & outside).sum() > 5
    assert {tuple(p) for p in near[clear & outside]} <= {tuple(p) for p in pixels.astype(float)}


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
    clean_keypoints = _project(scene.joints.reshape(-1, 3), scene).reshape(scene.keypoints.shape)
    noisy, masks, boundaries = observe(scene.clean_masks, clean_keypoints, SceneNoise(2.0, 1.5, 0), generator)
    assert (noisy - clean_keypoints).std() == pytest.approx(2.0, rel=0.15)
    jitter = torch.cat(boundaries) - torch.cat(scene.boundaries)
    assert jitter.std() == pytest.approx(1.5, rel=0.1) and jitter.mean().abs() < 0.1
    for grow, sign in ((2, 1), (-2, -1)):
        _, masks, boundaries = observe(
            scene.clean_masks, clean_keypoints, SceneNoise(mask_grow=grow), generator
        )
        assert sign * (masks.sum() - scene.clean_masks.sum()) > 0
        # the grown (shrunk) outline lies outside (inside) the clean mask
        rows, cols = boundaries[0][:, 1].long(), boundaries[0][:, 0].long()
        assert scene.clean_masks[0][rows, cols].mean() == (0.0 if grow > 0 else 1.0)
    with pytest.raises(ConfigError):
        SceneNoise(keypoint_px=-1.0)
