"""Plücker rays: distances against a brute-force projection, camera rays, unposing, matching."""

from __future__ import annotations

import copy

import pytest
import torch

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.rays import (
    closest_vertices,
    geman_mcclure,
    pixel_rays,
    plucker,
    point_line_distance,
    unpose_rays,
)
from edgevision.recon3d.skinning import axis_angle_to_matrix, rigid

DOUBLE = torch.float64


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _brute_distance(points: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """The distance to the line's closest point, found by projecting onto the line."""
    unit = directions / directions.norm(dim=1, keepdim=True)
    foot = origins + ((points - origins) * unit).sum(1, keepdim=True) * unit
    return (points - foot).norm(dim=1)


def _camera() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 640x480 camera 3 m in front of the body (+z), looking at it, slightly turned."""
    K = torch.tensor([[800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]], dtype=DOUBLE)
    # camera axes: x right, y down, z forward; the body's +z faces it
    flip = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]], dtype=DOUBLE)
    R = axis_angle_to_matrix(torch.tensor([0.05, -0.1, 0.02], dtype=DOUBLE)) @ flip
    t = torch.tensor([0.1, -0.05, 3.0], dtype=DOUBLE)
    return K, R, t


def _project(points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    in_camera = points @ R.T + t
    assert (in_camera[:, 2] > 0).all()
    pixels = in_camera @ K.T
    return pixels[:, :2] / pixels[:, 2:]


def test_point_line_distance_equals_the_projection() -> None:
    generator = _generator(0)
    points = 3 * torch.randn(500, 3, generator=generator, dtype=DOUBLE)
    origins = 3 * torch.randn(500, 3, generator=generator, dtype=DOUBLE)
    directions = torch.randn(500, 3, generator=generator, dtype=DOUBLE) * 5  # not unit
    rays = plucker(origins, directions)
    torch.testing.assert_close(rays[:, :3].norm(dim=1), torch.ones(500, dtype=DOUBLE))
    expected = _brute_distance(points, origins, directions)
    torch.testing.assert_close(point_line_distance(points, rays), expected, atol=1e-12, rtol=0)
    # the moment does not depend on which point of the line made it
    shifted = plucker(origins + 2.5 * directions, directions)
    torch.testing.assert_close(shifted, rays, atol=1e-12, rtol=0)


def test_pixel_rays_pass_through_the_points_they_see() -> None:
    K, R, t = _camera()
    points = torch.randn(200, 3, generator=_generator(1), dtype=DOUBLE) * 0.5
    rays = pixel_rays(_project(points, K, R, t), K, R, t)
    assert point_line_distance(points, rays).max() < 1e-12
    centre = -(R.T @ t)
    assert point_line_distance(centre.expand(200, 3), rays).max() < 1e-12
    assert ((points - centre) * rays[:, :3]).sum(1).min() > 0  # pointing away from the camera


def test_unposing_by_a_rigid_transform_follows_the_plucker_rule() -> None:
    """For a rigid (R, t): d' = R d and m' = R m + t x R d, here with the inverse's (R, t)."""
    generator = _generator(2)
    rays = plucker(
        torch.randn(50, 3, generator=generator, dtype=DOUBLE),
        torch.randn(50, 3, generator=generator, dtype=DOUBLE),
    )
    rotation = axis_angle_to_matrix(torch.randn(50, 3, generator=generator, dtype=DOUBLE))
    transforms = rigid(rotation, torch.randn(50, 3, generator=generator, dtype=DOUBLE))
    inverse = torch.linalg.inv(transforms)
    turned = (inverse[:, :3, :3] @ rays[:, :3, None])[..., 0]
    moment = (inverse[:, :3, :3] @ rays[:, 3:, None])[..., 0] + torch.linalg.cross(inverse[:, :3, 3], turned)
    torch.testing.assert_close(
        unpose_rays(rays, transforms), torch.cat([turned, moment], 1), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unposed_rays_of_a_posed_body_pass_through_its_canonical_vertices(
    small_body: BodyModel, dtype
) -> None:
    """Rays cast through the posed vertices, matched to them and unposed pass within 1e-5 m of
    the canonical vertices (the issue's acceptance), though LBS transforms are not rigid."""
    body = copy.deepcopy(small_body).to(dtype)  # Module.to casts in place: not the shared one
    assert body.template.dtype == dtype
    generator = _generator(3)
    pose = 0.4 * torch.randn(body.num_joints, 3, generator=generator, dtype=DOUBLE)
    shape = torch.randn(5, generator=generator, dtype=DOUBLE)
    offsets = 0.02 * torch.randn(body.num_vertices, 3, generator=generator, dtype=DOUBLE)
    translation = torch.tensor([0.0, 0.1, 0.2], dtype=DOUBLE)
    posed = body(*(x.to(dtype) for x in (pose, shape, offsets, translation)))
    canonical, _ = body.canonical(shape.to(dtype), offsets.to(dtype))
    K, R, t = (x.to(dtype) for x in _camera())
    rays = pixel_rays(_project(posed.vertices, K, R, t), K, R, t)
    unposed = unpose_rays(rays, posed.transforms)
    assert point_line_distance(canonical, unposed).max() < 1e-5
    # a blended transform is not a rotation: the unposed rays differ from the posed ones
    assert point_line_distance(canonical, rays).median() > 0.01
    if dtype == DOUBLE:
        assert point_line_distance(canonical, unposed).max() < 1e-10


def test_closest_vertices_is_the_brute_force_minimum() -> None:
    generator = _generator(4)
    vertices = torch.randn(300, 3, generator=generator, dtype=DOUBLE)
    rays = plucker(
        torch.randn(70, 3, generator=generator, dtype=DOUBLE),
        torch.randn(70, 3, generator=generator, dtype=DOUBLE),
    )
    expected = torch.stack([point_line_distance(vertices, ray.expand(300, 6)).argmin() for ray in rays])
    assert torch.equal(closest_vertices(rays, vertices, chunk=16), expected)  # chunks of 16, 70 rays


def test_geman_mcclure_values() -> None:
    x = torch.tensor([0.0, 0.01, 0.02, -0.02, 10.0], dtype=DOUBLE)
    expected = torch.tensor([0.0, 0.5, 0.8, 0.8, 100 / (100 + 1e-4)], dtype=DOUBLE)
    torch.testing.assert_close(geman_mcclure(x, sigma=0.01), expected)
    with pytest.raises(ConfigError, match="sigma"):
        geman_mcclure(x, sigma=0.0)


def test_bad_rays_inputs() -> None:
    K, R, t = _camera()
    pixels = torch.zeros(4, 2, dtype=DOUBLE)
    with pytest.raises(ConfigError, match="not a rotation"):
        pixel_rays(pixels, K, 2 * R, t)
    with pytest.raises(ConfigError, match="singular"):
        pixel_rays(pixels, torch.zeros(3, 3, dtype=DOUBLE), R, t)
    with pytest.raises(ShapeError, match=r"pixels must have shape \(N, 2\)"):
        pixel_rays(torch.zeros(4, 3, dtype=DOUBLE), K, R, t)
    with pytest.raises(ShapeError, match="transforms"):
        unpose_rays(torch.zeros(4, 6, dtype=DOUBLE), torch.eye(4, dtype=DOUBLE).expand(3, 4, 4))
    with pytest.raises(ConfigError, match="rays has NaN"):
        closest_vertices(torch.full((2, 6), float("nan"), dtype=DOUBLE), torch.zeros(3, 3, dtype=DOUBLE))
