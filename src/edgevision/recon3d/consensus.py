"""The consensus shape (Alldieck et al. 2018, Sec. 3.3, step 2): the person's offsets D and
shape beta in the canonical pose, fitted to the silhouettes of all frames at once.

Per frame, the silhouette's boundary pixels become camera rays (Plücker); each ray is matched to
its nearest vertex (point-to-line distance) among the posed model's *silhouette vertices*: the
vertices on the mesh's contour generator (incident to a face turned towards the camera and to
one turned away) whose projection lies on the model's own rendered outline (so contours hidden
behind the body do not catch rays). The ray is then unposed with the inverse of that vertex's
skinning transform. In the canonical pose the rays of all frames form one visual hull, and

    E(D, beta) = mean_i rho(d(T(beta, D)_{v(i)}, r_i))
                 + (w_lp E_lp + w_var E_var + w_sym E_sym) / (V sigma^2)

is minimised: rho is Geman-McClure with scale ``sigma`` on the point-to-line distance d, and the
regularisers (:mod:`edgevision.recon3d.regularizers`) are sums over the V vertices, divided by
``V sigma^2`` so that a weight of 1 prices a vertex moved by sigma like one ray missed by sigma.
The paper's coarse-to-fine schedule: stages of decreasing regulariser weights, the rays matched
and unposed again at the start of each stage from the current shape.

Optimiser: L-BFGS with a strong-Wolfe line search (torch): the energy is smooth, full-batch and
has ~8k unknowns, where a quasi-Newton method converges in tens of iterations with no learning
rate to tune (Adam's step would have to be chosen in metres and decayed by hand).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from edgevision.errors import ConfigError
from edgevision.recon3d._checks import check_tensor
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera
from edgevision.recon3d.mesh import mean_edge_length, uniform_laplacian
from edgevision.recon3d.rays import geman_mcclure, pixel_rays, point_line_distance, unpose_rays
from edgevision.recon3d.regularizers import closeness_term, laplacian_term, symmetry_term
from edgevision.recon3d.render import render
from edgevision.recon3d.silhouette import silhouette_boundary
from edgevision.recon3d.skinning import blend_transforms
from edgevision.validation import check_integer, check_number


@dataclass(frozen=True)
class Stage:
    """One stage of the coarse-to-fine schedule: the regulariser weights (dimensionless, see
    the module docstring), the Geman-McClure scale ``sigma`` (metres: rays much farther than it
    pull little, so it starts as large as the template's misfit and shrinks), the L-BFGS
    iterations, and whether D moves (``offsets=False``: a shape-only stage, D held and only beta
    fitted, see :data:`DEFAULT_STAGES`)."""

    laplacian: float
    closeness: float
    symmetry: float
    sigma: float
    iterations: int
    offsets: bool = True

    def __post_init__(self) -> None:
        for name in ("laplacian", "closeness", "symmetry"):
            check_number(name, getattr(self, name), 0.0, float("inf"), high_open=True)
        check_number("sigma", self.sigma, 0.0, 1.0, low_open=True)
        check_integer("iterations", self.iterations, 1)


# First the shape (the paper's Sec. 3.3 fits beta and D together; here beta comes first, as SMPL
# fits do, so that D is not left to soak up a wrong build): shape-only stages, D held at 0, robust
# scale 10 cm (the mean shape misses the true outline by up to 10 cm), few L-BFGS iterations each
# and the rays matched again before each (ICP-like: solving one set of matches to the end pulls
# beta towards the wrong vertices those matches hold; measured on make_scene(seed=0), 16 stages of
# 5 iterations left the template 5.7 mm off, 16 of 3 6.9 mm, 3 of 20 58 mm).
# Without this phase the consensus from the mean shape reached 7.9 mm after 17 stages of beta and D
# together; with it 3.3 mm (seed 0) and 3.2 mm (seed 1) in about 50 CPU s
# (benchmarks/recon3d_consensus).
SHAPE_STAGES = (
    Stage(laplacian=0.0, closeness=0.0, symmetry=0.0, sigma=0.1, iterations=5, offsets=False),
) * 16

# Then D and beta: weights fall by a constant factor per stage, as the paper's schedule (Sec. 4)
# lowers them. Each weight set runs twice, the rays matched again in between (an ICP-like loop).
DEFAULT_STAGES = (
    *SHAPE_STAGES,
    *[Stage(laplacian=100.0, closeness=10.0, symmetry=10.0, sigma=0.04, iterations=20)] * 2,
    *[Stage(laplacian=30.0, closeness=1.0, symmetry=3.0, sigma=0.02, iterations=20)] * 2,
    *[Stage(laplacian=10.0, closeness=0.1, symmetry=1.0, sigma=0.01, iterations=30)] * 2,
    *[Stage(laplacian=3.0, closeness=0.03, symmetry=0.3, sigma=0.01, iterations=40)] * 2,
)


MATCH_SHORTLIST = 8  # silhouette vertices nearest in the image among which a ray finds its match


@dataclass(frozen=True)
class ConsensusConfig:
    """stages: the schedule; outline_px: how near (in
    pixels) to the model's rendered outline a contour vertex must project to catch rays;
    fit_shape: optimise beta along with D; cell: the unknowns D live on the body decimated to
    this cell (metres) and reach the body's vertices smoothly (:func:`lift_matrix`), None: one
    offset per vertex of the body."""

    stages: tuple[Stage, ...] = DEFAULT_STAGES
    outline_px: float = 1.5
    fit_shape: bool = True
    cell: float | None = None

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError("the consensus needs at least one stage")
        if not self.fit_shape and not all(stage.offsets for stage in self.stages):
            raise ConfigError("a shape-only stage (offsets=False) needs fit_shape=True")
        check_number("outline_px", self.outline_px, 0.0, 100.0, low_open=True)


@dataclass(frozen=True)
class StageLog:
    """What one stage did: its weights, the rays matched, the energy (and its data part) at the
    stage's start and end, wall and CPU seconds spent (matching included)."""

    stage: Stage
    rays: int
    energy_start: float
    energy_end: float
    data_end: float
    seconds: float
    cpu_seconds: float


@dataclass(frozen=True, eq=False)
class ConsensusResult:
    """vertices ``(V, 3)`` the consensus canonical shape ``T(beta, D)``; offsets ``(V, 3)`` D;
    shape ``(S,)`` beta; log: one :class:`StageLog` per stage."""

    vertices: torch.Tensor
    offsets: torch.Tensor
    shape: torch.Tensor
    log: tuple[StageLog, ...]


def silhouette_vertices(
    vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, outline_px: float
) -> torch.Tensor:
    """The indices of the posed ``(V, 3)`` mesh's silhouette vertices seen by ``camera``: on its
    contour generator and projecting within ``outline_px`` of its rendered outline."""
    corners = vertices[faces]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    towards = ((corners.mean(1) - vertices.new_tensor(camera.center)) * normals).sum(1) < 0
    facing = torch.zeros(len(vertices), 2, dtype=torch.bool)
    for side, chosen in enumerate((towards, ~towards)):
        facing[faces[chosen].reshape(-1), side] = True
    pixels = camera.project(vertices.numpy())[0]
    mask = render(vertices.numpy(), faces.numpy(), camera).mask
    off_outline = np.ones_like(mask, dtype=np.uint8)
    outline = silhouette_boundary(mask)
    off_outline[outline[:, 1], outline[:, 0]] = 0
    distance = cv2.distanceTransform(off_outline, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    columns = np.clip(np.rint(pixels[:, 0]), 0, camera.width - 1).astype(np.int64)
    rows = np.clip(np.rint(pixels[:, 1]), 0, camera.height - 1).astype(np.int64)
    near = torch.as_tensor(distance[rows, columns] <= outline_px)
    return torch.nonzero(facing.all(1) & near).reshape(-1)


def match_silhouette(
    body: BodyModel,
    pose: torch.Tensor,
    shape: torch.Tensor,
    offsets: torch.Tensor | None,
    pixels: torch.Tensor,
    rays: torch.Tensor,
    camera: Camera,
    outline_px: float,
    translation: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N,)``: for each of one frame's silhouette rays ``(N, 6)`` (through the boundary
    ``pixels`` ``(N, 2)``) the nearest of the posed model's silhouette vertices
    (:func:`silhouette_vertices`) by point-to-line distance, among the ``MATCH_SHORTLIST``
    nearest in the image (a ray's distance to a vertex is the image distance times the vertex's
    depth over the focal length, and depths along an outline vary little: a brute force over all
    silhouette vertices costs 30 times more for the same matches)."""
    with torch.no_grad():
        vertices = body(pose, shape, offsets, translation).vertices
        candidates = silhouette_vertices(vertices, body.faces, camera, outline_px)
        if len(candidates) == 0:
            raise ConfigError("the posed model shows no silhouette vertex: is it in the camera's view?")
        projected = camera.project(vertices[candidates].numpy())[0]
        count = min(MATCH_SHORTLIST, len(candidates))
        shortlist = torch.as_tensor(cKDTree(projected).query(pixels.numpy(), k=count)[1]).reshape(
            len(rays), count
        )
        shortlisted = vertices[candidates[shortlist]]  # (N, k, 3)
        moments = (
            torch.linalg.cross(shortlisted, rays[:, None, :3].expand_as(shortlisted)) - rays[:, None, 3:]
        )
        best = moments.norm(dim=2).argmin(dim=1)
        return candidates[shortlist[torch.arange(len(rays)), best]]


def lift_matrix(body: BodyModel, coarse: BodyModel, cell: float) -> torch.Tensor:
    """The sparse ``(V, V_c)`` map of offsets on ``coarse`` (``body.decimated(cell)``) to the
    body's vertices: each vertex takes its cluster's offset, then the rows are diffused over the
    body's mesh across about half a cell (:func:`edgevision.recon3d.mesh.diffuse`), so that the
    lifted offsets are smooth instead of constant per cluster. Rows sum to 1."""
    if len(coarse.full_to_this) != body.num_vertices:
        raise ConfigError("the coarse body is not a decimation of this body")
    dtype = body.template.dtype
    indices = torch.stack([torch.arange(body.num_vertices), coarse.full_to_this])
    lift = torch.sparse_coo_tensor(
        indices, torch.ones(body.num_vertices, dtype=dtype), (body.num_vertices, coarse.num_vertices)
    )
    laplacian = uniform_laplacian(body.faces, body.num_vertices, dtype=dtype)
    steps = math.ceil(2 * (cell / 2 / mean_edge_length(body.template, body.faces)) ** 2)
    for _ in range(steps):
        lift = (lift - 0.5 * torch.sparse.mm(laplacian, lift)).coalesce()
    return lift


class _Energy:
    """The consensus energy of one stage, for fixed matches (see the module docstring): the
    unknowns are ``coarse``'s offsets, lifted to ``body`` by ``lift`` (None: the identity).

    Each frame's rays are unposed inside the energy, with the skinning transforms of the current
    shape's skeleton: beta moves the joints, and rays unposed once with the starting shape's
    skeleton would pull beta towards a wrong shape (up to 2 cm off in back views, measured)."""

    def __init__(
        self,
        body: BodyModel,
        coarse: BodyModel,
        lift: torch.Tensor | None,
        poses: torch.Tensor,
        translations: torch.Tensor | None,
    ) -> None:
        self.body, self.coarse, self.lift = body, coarse, lift
        self.poses, self.translations = poses, translations
        self.laplacian = uniform_laplacian(coarse.faces, coarse.num_vertices, dtype=body.template.dtype)
        self.matches: list[tuple[torch.Tensor, torch.Tensor]] = []  # per frame: vertices, posed rays

    def lifted(self, offsets: torch.Tensor) -> torch.Tensor:
        return offsets if self.lift is None else torch.sparse.mm(self.lift, offsets)

    def unposed(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All frames' matched vertices ``(N,)`` and their rays unposed with ``shape``'s skeleton."""
        joints = self.body.canonical(shape)[1]
        unposed = []
        for frame, (matched, rays) in enumerate(self.matches):
            translation = None if self.translations is None else self.translations[frame]
            bones = self.body.bones(joints, self.poses[frame], translation)
            unposed.append(unpose_rays(rays, blend_transforms(self.body.weights[matched], bones)))
        return torch.cat([matched for matched, _ in self.matches]), torch.cat(unposed)

    def __call__(
        self, offsets: torch.Tensor, shape: torch.Tensor, stage: Stage
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(total, data) energies, scalars."""
        vertices = self.body.canonical(shape, self.lifted(offsets))[0]
        matched, rays = self.unposed(shape)
        data = geman_mcclure(point_line_distance(vertices[matched], rays), stage.sigma).mean()
        regular = (
            stage.laplacian * laplacian_term(offsets, self.laplacian)
            + stage.closeness * closeness_term(offsets)
            + stage.symmetry * symmetry_term(offsets, self.coarse.mirror)
        )
        return data + regular / (self.coarse.num_vertices * stage.sigma**2), data


def _minimise(
    energy: _Energy, offsets: torch.Tensor, shape: torch.Tensor, variables: list[torch.Tensor], stage: Stage
) -> None:
    """``stage.iterations`` L-BFGS iterations on ``variables`` (``offsets`` and maybe ``shape``)."""
    optimiser = torch.optim.LBFGS(
        variables,
        lr=1.0,
        max_iter=stage.iterations,
        history_size=20,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        total = energy(offsets, shape, stage)[0]
        total.backward()
        return total

    optimiser.step(closure)


def consensus_shape(
    body: BodyModel,
    poses: torch.Tensor,
    boundaries: Sequence[torch.Tensor],
    camera: Camera,
    config: ConsensusConfig = ConsensusConfig(),
    *,
    shape: torch.Tensor | None = None,
    translations: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ConsensusResult:
    """Fit D and beta to the silhouettes of all frames (Sec. 3.3).

    Args:
        body: the model whose vertices catch the rays (its resolution bounds the accuracy: a
            ray is matched to a vertex, not to the surface between vertices).
        poses: ``(F, J, 3)`` each frame's pose (from step 1, or the truth).
        boundaries: per frame ``(N_f, 2)`` silhouette boundary pixels ``(x, y)``.
        camera: the camera of every frame.
        config: the schedule, the robust scale, where the unknowns live.
        shape: ``(S,)`` the starting beta (default zeros; kept fixed when ``config.fit_shape``
            is false). translations: ``(F, 3)`` metres, default none.
        progress: called after each stage with (stages done, stages in all).
    """
    frames = len(poses)
    check_tensor("poses", poses, (None, body.num_joints, 3))
    if frames == 0 or len(boundaries) != frames:
        raise ConfigError(
            f"need one boundary per pose and at least one frame, got {len(boundaries)} and {frames}"
        )
    if translations is not None:
        check_tensor("translations", translations, (frames, 3))
    dtype = body.template.dtype
    beta = torch.zeros(len(body.shape_names), dtype=dtype)
    if shape is not None:
        beta = check_tensor("shape", shape, (len(body.shape_names),)).to(dtype).clone()
    pixels, rays = [], []
    for index, boundary in enumerate(boundaries):
        check_tensor(f"boundaries[{index}]", boundary, (None, 2))
        if len(boundary) == 0:
            raise ConfigError(f"frame {index} has an empty silhouette")
        pixels.append(boundary.to(dtype))
        K, R, t = (torch.as_tensor(matrix, dtype=dtype) for matrix in (camera.K, camera.R, camera.t))
        rays.append(pixel_rays(pixels[-1], K, R, t))
    coarse = body if config.cell is None else body.decimated(config.cell)
    lift = None if config.cell is None else lift_matrix(body, coarse, config.cell)
    full = _Energy(body, coarse, lift, poses, translations)
    # Shape-only stages catch the rays with the coarse body: 5 numbers do not need the full
    # body's outline, and its matching (rasterising every frame) costs 4 times more.
    shape_only = full if lift is None else _Energy(coarse, coarse, None, poses, translations)
    offsets = torch.zeros(coarse.num_vertices, 3, dtype=dtype, requires_grad=True)
    if config.fit_shape:
        beta.requires_grad_()
    log = []
    for done, stage in enumerate(config.stages, 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        energy = full if stage.offsets else shape_only
        lifted = energy.lifted(offsets.detach())
        energy.matches = [
            (
                match_silhouette(
                    energy.body,
                    poses[f],
                    beta.detach(),
                    lifted,
                    pixels[f],
                    rays[f],
                    camera,
                    config.outline_px,
                    None if translations is None else translations[f],
                ),
                rays[f],
            )
            for f in range(frames)
        ]
        with torch.no_grad():
            energy_start = float(energy(offsets, beta, stage)[0])
        variables = ([offsets] if stage.offsets else []) + ([beta] if config.fit_shape else [])
        _minimise(energy, offsets, beta, variables, stage)
        with torch.no_grad():
            total, data = energy(offsets, beta, stage)
        log.append(
            StageLog(
                stage,
                sum(len(r) for _, r in energy.matches),
                energy_start,
                float(total),
                float(data),
                time.perf_counter() - start,
                time.process_time() - cpu_start,
            )
        )
        if progress is not None:
            progress(done, len(config.stages))
    with torch.no_grad():
        lifted, beta = full.lifted(offsets), beta.detach()
        return ConsensusResult(body.canonical(beta, lifted)[0], lifted, beta, tuple(log))
