"""Per-frame refinement of the offsets (Alldieck et al. 2018, Sec. 3.4, step 3): starting from the
consensus offsets D, each frame gets its own offsets ``D_t = D + R_t`` fitted to that frame's
silhouette alone, so that what moves from frame to frame (cloth, hair) is captured.

The data term is the consensus step's: each of the frame's silhouette rays is matched to its
nearest candidate vertex of the posed model (point-to-line distance), and the Geman-McClure
function of that distance is averaged. The candidates are the contour vertices (incident to a
face turned towards the camera and to one turned away) that the camera sees. The pose is fixed,
so each vertex's skinning transform A_v is too, and the distance is measured in the posed frame
(metres, as the camera sees them) rather than to unposed rays. The regularisers act on the
residual R_t, not on D_t: the Laplacian keeps the frame's change smooth, closeness keeps D_t
near D (the per-frame fit regularised towards the consensus shape):

    E(R) = mean_i rho(d(A_v(i) T(beta, D + R)_v(i), r_i))
           + (w_lp ||L R||^2 + w_c ||R||^2) / (V sigma^2)

with the consensus energy's normalisation: a weight of 1 prices a vertex moved by sigma like one
ray missed by sigma. The rays are matched again at the start of each round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from scipy.ndimage import maximum_filter

from edgevision.errors import ConfigError
from edgevision.recon3d._checks import check_tensor
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera
from edgevision.recon3d.mesh import uniform_laplacian
from edgevision.recon3d.rays import closest_vertices, geman_mcclure, point_line_distance
from edgevision.recon3d.regularizers import closeness_term, laplacian_term
from edgevision.recon3d.render import render
from edgevision.recon3d.skinning import apply_transforms
from edgevision.validation import check_integer, check_number

# Metres a contour vertex may lie behind the z-buffer near its pixel and still count as seen:
# the z-buffer holds the surface at pixel centres, the vertex lies between them.
VISIBILITY_TOLERANCE = 0.02


@dataclass(frozen=True)
class RefineWeights:
    """The refinement's weights (dimensionless, see the module docstring) and robust scale.

    laplacian: smoothness of the frame's residual R_t; closeness: R_t near 0 (D_t near D); both
    higher than the consensus step's last stage, as one frame sees only its own outline.
    sigma: the Geman-McClure scale, metres (the consensus step's).
    """

    laplacian: float = 30.0
    closeness: float = 0.01
    sigma: float = 0.01

    def __post_init__(self) -> None:
        for name in ("laplacian", "closeness"):
            check_number(name, getattr(self, name), 0.0, float("inf"), high_open=True)
        check_number("sigma", self.sigma, 0.0, 1.0, low_open=True)


def contour_vertices(vertices: torch.Tensor, faces: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """The indices of the ``(V, 3)`` mesh's vertices on its contour generator seen from
    ``centre`` (3,): incident to a face turned towards it and to one turned away."""
    corners = vertices[faces]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    towards = ((centre - corners.mean(dim=1)) * normals).sum(dim=1) > 0
    front = torch.zeros(len(vertices), dtype=torch.bool)
    back = torch.zeros(len(vertices), dtype=torch.bool)
    front[faces[towards].reshape(-1)] = True
    back[faces[~towards].reshape(-1)] = True
    return torch.nonzero(front & back).reshape(-1)


def visible_contour_vertices(
    vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, tolerance: float = VISIBILITY_TOLERANCE
) -> torch.Tensor:
    """The contour vertices (:func:`contour_vertices`) of the posed ``(V, 3)`` mesh that
    ``camera`` sees: in the image, and no farther than ``tolerance`` metres behind the farthest
    surface (or background) among the 3x3 pixels around their own. A contour hidden behind the
    body (the far arm seen from the side) would otherwise catch the rays that graze the near
    side, as a point-to-line distance does not see depth. The 3x3 maximum, not the pixel's own
    depth: at an outline the surface is grazing, and the pixel a contour vertex rounds to may
    hold the same surface centimetres nearer, while a neighbour holds the background."""
    contour = contour_vertices(vertices, faces, torch.as_tensor(camera.center, dtype=vertices.dtype))
    points = vertices.detach().numpy()
    farthest = maximum_filter(render(points, faces.numpy(), camera).depth, size=3, mode="nearest")
    pixels, depth = camera.project(points[contour.numpy()])
    columns, rows = np.rint(pixels).astype(np.int64).T
    inside = (columns >= 0) & (columns < camera.width) & (rows >= 0) & (rows < camera.height)
    seen = np.zeros(len(contour), dtype=bool)
    seen[inside] = depth[inside] <= farthest[rows[inside], columns[inside]] + tolerance
    return contour[torch.as_tensor(seen)]


def refine_frame(
    body: BodyModel,
    pose: torch.Tensor,
    shape: torch.Tensor,
    offsets: torch.Tensor,
    rays: torch.Tensor,
    *,
    camera: Camera,
    weights: RefineWeights = RefineWeights(),
    iterations: int = 20,
    rounds: int = 3,
    translation: torch.Tensor | None = None,
) -> torch.Tensor:
    """One frame's offsets ``D_t`` ``(V, 3)``, metres: ``offsets`` plus a smooth residual fitted
    to the frame's silhouette rays (see the module docstring).

    Args:
        body: the model (its resolution bounds the accuracy: rays are matched to vertices).
        pose: ``(J, 3)`` the frame's pose, radians. shape: ``(S,)`` beta.
        offsets: ``(V, 3)`` the consensus offsets D, metres.
        rays: ``(N, 6)`` the frame's silhouette boundary rays (Plücker, world frame).
        camera: the frame's camera (which contour vertices it sees).
        weights: the regulariser weights and robust scale.
        iterations: L-BFGS iterations per round. rounds: matchings of the rays (each round
            matches them to the current shape, then optimises).
        translation: ``(3,)`` metres, the frame's, if the poses carry one.
    """
    check_tensor("pose", pose, (body.num_joints, 3))
    check_tensor("shape", shape, (len(body.shape_names),))
    check_tensor("offsets", offsets, (body.num_vertices, 3))
    check_tensor("rays", rays, (None, 6))
    check_integer("iterations", iterations, 1)
    check_integer("rounds", rounds, 1)
    if len(rays) == 0:
        raise ConfigError("refine_frame needs at least one silhouette ray, got none")
    dtype = body.template.dtype
    pose, shape, offsets, rays = (value.to(dtype) for value in (pose, shape, offsets, rays))
    with torch.no_grad():
        transforms = body(pose, shape, offsets, translation).transforms  # the pose is fixed
    laplacian = uniform_laplacian(body.faces, body.num_vertices, dtype=dtype)
    residual = torch.zeros_like(offsets, requires_grad=True)

    def posed(residual: torch.Tensor) -> torch.Tensor:
        return apply_transforms(transforms, body.canonical(shape, offsets + residual)[0])

    for _ in range(rounds):
        with torch.no_grad():
            vertices = posed(residual)
            candidates = visible_contour_vertices(vertices, body.faces, camera)
            if len(candidates) == 0:
                raise ConfigError("the camera sees no contour vertex of the posed model: is it in view?")
            matched = candidates[closest_vertices(rays, vertices[candidates])]
        _minimise(partial(_energy, posed, matched, rays, laplacian, weights), residual, iterations)
    return (offsets + residual).detach()


def _energy(
    posed: Callable[[torch.Tensor], torch.Tensor],
    matched: torch.Tensor,
    rays: torch.Tensor,
    laplacian: torch.Tensor,
    weights: RefineWeights,
    residual: torch.Tensor,
) -> torch.Tensor:
    """The energy of the module docstring, a scalar: ``posed`` maps the ``(V, 3)`` residual R_t
    to the posed vertices, ``matched`` ``(N,)`` are the vertices of the ``(N, 6)`` rays."""
    data = geman_mcclure(point_line_distance(posed(residual)[matched], rays), weights.sigma).mean()
    regular = weights.laplacian * laplacian_term(residual, laplacian)
    regular = regular + weights.closeness * closeness_term(residual)
    return data + regular / (len(residual) * weights.sigma**2)


def _minimise(energy: Callable[[torch.Tensor], torch.Tensor], unknown: torch.Tensor, iterations: int) -> None:
    """``iterations`` of L-BFGS (strong-Wolfe line search, as the consensus step) on ``energy``
    of the leaf tensor ``unknown``, in place."""
    optimiser = torch.optim.LBFGS(
        [unknown], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_change=1e-12
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = energy(unknown)
        value.backward()
        return value

    optimiser.step(closure)
