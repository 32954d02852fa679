"""Camera rays as Plücker lines, their unposing and matching to body vertices (Alldieck et al.
Sec. 3.3, unposing silhouette rays), and the Geman-McClure robust function of the data term.

A ray is ``(d, m)`` ``(N, 6)``: d the unit direction, m = o x d its moment (o any point on it).
The distance from a point x to the line is ``||x x d - m||``.
"""

from __future__ import annotations

import torch

from edgevision.errors import ConfigError
from edgevision.recon3d._checks import check_tensor
from edgevision.validation import check_number

_ROTATION_TOLERANCE = 1e-4  # ||R R^T - I||_max allowed for a camera rotation (float32 inputs)


def plucker(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` points and (not necessarily unit) ``(N, 3)`` directions -> ``(N, 6)`` rays."""
    unit = directions / directions.norm(dim=-1, keepdim=True)
    return torch.cat([unit, torch.linalg.cross(origins, unit)], dim=-1)


def pixel_rays(pixels: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The world rays through ``(N, 2)`` pixel coordinates ``(x, y)`` of a pinhole camera.

    Args:
        pixels: ``(N, 2)`` image coordinates in the frame K maps to (the caller adds 0.5 for
            pixel centres if its K puts integers on pixel corners).
        K: ``(3, 3)`` intrinsics. R: ``(3, 3)`` rotation and t: ``(3,)`` translation, metres,
            world -> camera: ``x_cam = R x_world + t``.
    Returns: ``(N, 6)`` rays in world coordinates, directions pointing away from the camera.
    """
    check_tensor("pixels", pixels, (None, 2))
    check_tensor("K", K, (3, 3))
    check_tensor("R", R, (3, 3))
    check_tensor("t", t, (3,))
    eye = torch.eye(3, dtype=R.dtype)
    if (R @ R.T - eye).abs().max() > _ROTATION_TOLERANCE or torch.linalg.det(R) < 0:
        raise ConfigError("camera R is not a rotation matrix")
    if torch.linalg.det(K).abs() < 1e-12:
        raise ConfigError("camera K is singular")
    homogeneous = torch.cat([pixels, torch.ones_like(pixels[:, :1])], dim=1)
    in_camera = torch.linalg.solve(K, homogeneous.T).T
    centre = -(R.T @ t)
    return plucker(centre.expand_as(in_camera), in_camera @ R)  # rows: R^T applied to each


def point_line_distance(points: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """``||x x d - m||`` ``(N,)`` between ``(N, 3)`` points and ``(N, 6)`` rays (the residual of
    the consensus data term), metres."""
    return (torch.linalg.cross(points, rays[:, :3]) - rays[:, 3:]).norm(dim=-1)


def unpose_rays(rays: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Rays taken into the canonical pose by the inverse of their matched vertices' ``(N, 4, 4)``
    skinning transforms (posed <- canonical).

    An LBS transform is affine, not rigid (its 3x3 part is a blend of rotations), so the rigid
    Plücker rule (d' = R d, m' = R m + t x R d) does not apply; as the paper does, the inverse of
    the blended 4x4 maps two points of the line, d x m (the point nearest the origin) and that
    plus d, and the canonical ray passes through their images. An affine map takes lines to lines,
    so the result is exact; distances along and from the line are not preserved.
    """
    check_tensor("rays", rays, (None, 6))
    check_tensor("transforms", transforms, (rays.shape[0], 4, 4))
    inverse = torch.linalg.inv(transforms)
    near = torch.linalg.cross(rays[:, :3], rays[:, 3:])
    ends = torch.stack([near, near + rays[:, :3]], dim=1)  # (N, 2, 3)
    moved = ends @ inverse[:, :3, :3].transpose(1, 2) + inverse[:, None, :3, 3]
    return plucker(moved[:, 0], moved[:, 1] - moved[:, 0])


def closest_vertices(rays: torch.Tensor, vertices: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each of ``(N, 6)`` rays the index of the nearest of ``(V, 3)`` vertices by point-to-line
    distance, ``(N,)`` int64 (brute force, ``chunk`` rays at a time: chunk * V * 3 floats)."""
    check_tensor("rays", rays, (None, 6))
    check_tensor("vertices", vertices, (None, 3))
    if len(vertices) == 0:
        raise ConfigError("no vertices to match rays to")
    nearest = []
    for block in rays.split(chunk):
        # ||v x d - m||^2 for every (ray, vertex) pair: (n, V)
        crossed = torch.linalg.cross(vertices[None], block[:, None, :3].expand(-1, len(vertices), -1))
        nearest.append(((crossed - block[:, None, 3:]) ** 2).sum(-1).argmin(dim=1))
    return torch.cat(nearest) if nearest else torch.zeros(0, dtype=torch.int64)


def geman_mcclure(residuals: torch.Tensor, sigma: float) -> torch.Tensor:
    """``rho(x) = x^2 / (x^2 + sigma^2)``, elementwise: about ``(x / sigma)^2`` for ``|x| << sigma``,
    1/2 at ``|x| = sigma``, saturating at 1 for outliers. ``sigma`` is in the residuals' unit
    (metres for point-to-line distances) and is the residual at which rho reaches half its bound."""
    sigma = check_number("sigma", sigma, 0.0, float("inf"), low_open=True, high_open=True)
    squared = residuals**2
    return squared / (squared + sigma**2)
