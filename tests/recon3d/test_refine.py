"""Per-frame refinement: a frame whose offsets differ from the consensus by a known smooth bump
pulls the bump's contour towards the truth and leaves the rest of the body alone; the true
offsets are a fixed point; hidden contours catch no rays; one-line errors on bad input.

The rays pass exactly through the true mesh's visible contour vertices, so the truth is a zero of
the data term and the test measures the optimisation, not pixel quantisation (rays from rendered
silhouettes lie up to a pixel inside the outline, and between vertices)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from edgevision.errors import ConfigError, EdgeVisionError, ShapeError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera, look_at
from edgevision.recon3d.rays import plucker
from edgevision.recon3d.refine import RefineWeights, contour_vertices, refine_frame, visible_contour_vertices
from edgevision.recon3d.shading import vertex_normals

DOUBLE = torch.float64
TURN = 0.5  # radians, the root's turn about the vertical
BUMP_CENTRE = np.array([0.0, 0.3, 0.16])  # metres: the belly, on the outline seen from the side
BUMP_RADIUS, BUMP_HEIGHT = 0.1, 0.02  # metres: a loose shirt's fold


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """torch on one thread: the fit's many small ops ran 20x slower on two threads of this shared
    2-core machine (0.74 s against 15 s) than on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _side_camera(vertices: np.ndarray) -> Camera:
    """320x240, 4 m to the body's right (turned with it), the body filling most of the height."""
    middle = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    right = np.array([-np.cos(TURN), 0.0, np.sin(TURN)])  # the body's -x after the turn about y
    rotation, translation = look_at(middle + 4.0 * right, middle, np.array([0.0, 1.0, 0.0]))
    return Camera(fx=480.0, fy=480.0, cx=159.5, cy=119.5, R=rotation, t=translation, width=320, height=240)


def _scene(body: BodyModel) -> dict[str, object]:
    """The frame's pose, the consensus offsets D (a smooth 1 cm swelling everywhere), the true
    frame offsets (D plus a bump along the normals on the belly), the camera, and the rays
    through the true mesh's visible contour vertices."""
    template = body.template.numpy()
    normals = torch.as_tensor(vertex_normals(template, body.faces.numpy()))
    centre = template[np.argmin(np.linalg.norm(template - BUMP_CENTRE, axis=1))]
    distance = np.linalg.norm(template - centre, axis=1)
    profile = torch.as_tensor(np.exp(-((distance / BUMP_RADIUS) ** 2)))
    consensus = 0.01 * normals
    truth = consensus + BUMP_HEIGHT * profile[:, None] * normals
    pose = torch.zeros(body.num_joints, 3, dtype=DOUBLE)
    pose[0, 1] = TURN
    shape = torch.zeros(len(body.shape_names), dtype=DOUBLE)
    posed = body(pose, shape, truth).vertices
    camera = _side_camera(posed.numpy())
    seen = visible_contour_vertices(posed, body.faces, camera)
    origins = torch.as_tensor(camera.center).expand(len(seen), 3)
    rays = plucker(origins, posed[seen] - origins)
    return dict(
        pose=pose,
        shape=shape,
        consensus=consensus,
        truth=truth,
        camera=camera,
        rays=rays,
        distance=distance,
        profile=profile.numpy(),
        seen=seen.numpy(),
    )


def test_refinement_pulls_the_bump_in_and_leaves_far_vertices(small_body: BodyModel) -> None:
    scene = _scene(small_body)
    refined = refine_frame(
        small_body, scene["pose"], scene["shape"], scene["consensus"], scene["rays"], camera=scene["camera"]
    )
    # The bump's vertices on the frame's outline: the ones its silhouette measures.
    observed = np.intersect1d(scene["seen"], np.flatnonzero(scene["profile"] > 0.3))
    assert len(observed) >= 8
    before = (scene["consensus"] - scene["truth"]).norm(dim=1).numpy()[observed].mean()
    after = (refined - scene["truth"]).norm(dim=1).numpy()[observed].mean()
    assert before > 0.01
    assert after < 0.4 * before  # measured 11.5 mm -> 3.2 mm
    # Across the bump, the unseen side moves with it (the Laplacian), however little.
    whole_bump = scene["profile"] > 0.5
    assert (refined - scene["truth"]).norm(dim=1).numpy()[whole_bump].mean() < (
        (scene["consensus"] - scene["truth"]).norm(dim=1).numpy()[whole_bump].mean()
    )
    far = scene["distance"] > 4 * BUMP_RADIUS
    assert (refined - scene["consensus"]).norm(dim=1).numpy()[far].max() < 0.0015  # measured 0.8 mm


def test_the_true_offsets_are_a_fixed_point(small_body: BodyModel) -> None:
    scene = _scene(small_body)
    refined = refine_frame(
        small_body,
        scene["pose"],
        scene["shape"],
        scene["truth"],
        scene["rays"],
        camera=scene["camera"],
        iterations=5,
        rounds=1,
    )
    assert (refined - scene["truth"]).abs().max() < 1e-6


def test_a_contour_hidden_behind_the_body_catches_no_rays(unit_sphere: tuple[np.ndarray, np.ndarray]) -> None:
    # A small ball 1 m behind a big one, both on the camera's axis: its whole contour is hidden.
    sphere, sphere_faces = unit_sphere
    front, back = 0.5 * sphere + [0.0, 0.0, 3.0], 0.2 * sphere + [0.0, 0.0, 4.0]
    vertices = torch.as_tensor(np.concatenate([front, back]))
    faces = torch.as_tensor(np.concatenate([sphere_faces, sphere_faces + len(front)]))
    camera = Camera(fx=200.0, fy=200.0, cx=79.5, cy=59.5, R=np.eye(3), t=np.zeros(3), width=160, height=120)
    contour = contour_vertices(vertices, faces, torch.zeros(3, dtype=DOUBLE)).numpy()
    seen = visible_contour_vertices(vertices, faces, camera).numpy()
    # Brute force: a vertex is on the contour generator when its incident faces face both ways.
    corners = vertices.numpy()[faces.numpy()]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    towards = (-(corners.mean(axis=1)) * normals).sum(axis=1) > 0
    expected = [
        v for v in range(len(vertices)) if len({bool(t) for t in towards[(faces.numpy() == v).any(1)]}) == 2
    ]
    np.testing.assert_array_equal(contour, expected)
    assert (contour >= len(front)).sum() > 10  # the back ball has a contour generator...
    assert len(seen) and (seen < len(front)).all()  # ...which the camera does not see
    np.testing.assert_array_equal(seen, contour[contour < len(front)])


def test_bad_input_fails_in_one_line(small_body: BodyModel) -> None:
    scene = _scene(small_body)
    args = (small_body, scene["pose"], scene["shape"], scene["consensus"])
    with pytest.raises(ConfigError, match="at least one silhouette ray"):
        refine_frame(*args, torch.zeros(0, 6, dtype=DOUBLE), camera=scene["camera"])
    with pytest.raises(ShapeError, match="offsets"):
        refine_frame(*args[:3], scene["consensus"][:10], scene["rays"], camera=scene["camera"])
    bad_rays = scene["rays"].clone()
    bad_rays[0, 0] = float("nan")
    with pytest.raises(ConfigError, match="rays"):
        refine_frame(*args, bad_rays, camera=scene["camera"])
    with pytest.raises(ConfigError, match="laplacian"):
        RefineWeights(laplacian=-1.0)
    with pytest.raises(ConfigError, match="iterations"):
        refine_frame(*args, scene["rays"], camera=scene["camera"], iterations=0)
    # A camera looking away from the body sees none of its contour.
    away = Camera(
        fx=480.0,
        fy=480.0,
        cx=159.5,
        cy=119.5,
        R=np.eye(3),
        t=np.array([0.0, 0.0, -10.0]),
        width=320,
        height=240,
    )
    with pytest.raises(EdgeVisionError, match="camera|behind"):
        refine_frame(*args, scene["rays"], camera=away)
