"""The rasteriser against brute-force and analytic references: coverage of pixel centres, plane
depth, the z-test, a cube's silhouette, perspective-correct barycentrics, texture lookup, chunking,
and one-line errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from edgevision.errors import ConfigError, EdgeVisionError, ShapeError
from edgevision.recon3d import render as render_module
from edgevision.recon3d.camera import Camera, look_at
from edgevision.recon3d.render import render

WIDTH, HEIGHT = 64, 48
# The camera frame is the world frame, so a point's pixel and depth are easy to write down; the
# focal lengths are powers of two, so points lifted from pixel centres at depths of few bits
# project back onto those centres exactly.
SCREEN = Camera(fx=32.0, fy=64.0, cx=31.5, cy=23.5, R=np.eye(3), t=np.zeros(3), width=WIDTH, height=HEIGHT)


def lift(pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The world points that ``SCREEN`` sees at ``pixels`` (N, 2) and ``depth`` (N,)."""
    normalised = (pixels - [SCREEN.cx, SCREEN.cy]) / [SCREEN.fx, SCREEN.fy]
    return np.column_stack([normalised * depth[:, None], depth])


def pixel_centres(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(H * W, 2) the (u, v) of every pixel centre, row-major."""
    rows, columns = np.mgrid[0:height, 0:width]
    return np.column_stack([columns.ravel(), rows.ravel()]).astype(float)


def barycentric_by_solving(triangle: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) barycentrics of ``points`` (N, 2) in ``triangle`` (3, 2), by inverting the 2x2
    system of two edges: independent of the renderer's edge functions."""
    edges = np.column_stack([triangle[0] - triangle[2], triangle[1] - triangle[2]])
    first_two = np.linalg.solve(edges, (points - triangle[2]).T).T
    return np.column_stack([first_two, 1.0 - first_two.sum(axis=1)])


@pytest.mark.parametrize("seed", range(4))
def test_a_triangle_covers_exactly_the_pixel_centres_inside_it(seed: int) -> None:
    rng = np.random.default_rng(seed)
    triangle = rng.uniform([-8, -8], [WIDTH + 8, HEIGHT + 8], (3, 2))  # may overhang the image
    depth = rng.uniform(1.0, 5.0, 3)  # perspective: coverage depends on the pixels only
    result = render(lift(triangle, depth), np.array([[0, 1, 2]]), SCREEN)
    weights = barycentric_by_solving(triangle, pixel_centres())
    assert np.abs(weights).min() > 1e-9  # no centre on an edge: the reference needs no tie rule
    expected = (weights >= 0).all(axis=1).reshape(HEIGHT, WIDTH)
    assert expected.sum() > 20
    np.testing.assert_array_equal(result.mask, expected)
    np.testing.assert_array_equal(result.face_index, np.where(expected, 0, -1))


def test_centres_on_an_edge_are_covered_and_a_split_square_has_no_crack() -> None:
    # Corners on pixel centres: the square's sides and diagonal run through centres.
    corners = np.array([[10.0, 5.0], [40.0, 5.0], [40.0, 35.0], [10.0, 35.0]])
    vertices = lift(corners, np.array([2.0, 3.0, 4.0, 2.5]))
    result = render(vertices, np.array([[0, 1, 2], [0, 2, 3]]), SCREEN)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[5:36, 10:41] = True
    np.testing.assert_array_equal(result.mask, expected)


def test_diagonals_through_centres_at_inexact_coordinates_leave_no_crack() -> None:
    # Quads split along a diagonal a-c that passes, in exact arithmetic, through the pixel
    # centres p + k d; a and c are not on the float grid, so the two triangles' edge functions
    # there are rounded values. Computed from each triangle's own corner order, both were
    # negative at some centre in 9 of these quads (a crack); in one shared order, in none.
    rng = np.random.default_rng(0)
    cracks = []
    for _ in range(300):
        origin, step = rng.integers([28, 20], [34, 26]).astype(float), rng.integers(-1, 2, 2).astype(float)
        first, last = rng.uniform(-20, -10), rng.uniform(10, 20)
        a, c = origin + first * step, origin + last * step
        across = np.array([-step[1], step[0]]) / max(np.linalg.norm(step), 1)
        corners = np.array(
            [a, (a + c) / 2 + across * rng.uniform(3, 6), c, (a + c) / 2 - across * rng.uniform(3, 6)]
        )
        if not step.any() or corners.min() < 0 or (corners.max(axis=0) > [WIDTH - 1, HEIGHT - 1]).any():
            continue
        mask = render(lift(corners, np.ones(4)), np.array([[0, 1, 2], [2, 3, 0]]), SCREEN).mask
        centres = origin + np.arange(np.ceil(first), np.floor(last) + 1)[:, None] * step
        if not mask[centres[:, 1].astype(int), centres[:, 0].astype(int)].all():
            cracks.append(corners.tolist())
    assert not cracks, cracks[:3]


def test_depth_of_a_tilted_plane_is_the_analytic_plane_depth() -> None:
    rotation, translation = look_at(
        np.array([0.4, -0.3, -3.0]), np.array([0.1, 0.2, 0.5]), np.array([0.0, 1.0, 0.0])
    )
    camera = Camera(fx=60.0, fy=55.0, cx=31.5, cy=23.5, R=rotation, t=translation, width=WIDTH, height=HEIGHT)
    # The plane n . x = d (world), two big triangles of it in view.
    normal, offset = np.array([0.3, -0.2, 1.0]), 0.6
    xy = np.array([[-2.0, -2.0], [2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]])
    vertices = np.column_stack([xy, (offset - xy @ normal[:2]) / normal[2]])
    result = render(vertices, np.array([[0, 1, 2], [0, 2, 3]]), camera)
    assert result.mask.mean() > 0.5
    origins, directions = camera.pixel_rays(pixel_centres()[result.mask.ravel()])
    hits = origins + directions * ((offset - origins @ normal) / (directions @ normal))[:, None]
    expected_depth = hits @ camera.R[2] + camera.t[2]
    np.testing.assert_allclose(result.depth[result.mask], expected_depth, rtol=0, atol=1e-9)
    assert np.isinf(result.depth[~result.mask]).all()
    # Perspective-correct barycentrics give the 3D point on the ray, not a screen-space blend.
    weights = result.barycentrics[result.mask]
    corners = vertices[np.array([[0, 1, 2], [0, 2, 3]])[result.face_index[result.mask]]]
    np.testing.assert_allclose(np.einsum("nk,nkc->nc", weights, corners), hits, rtol=0, atol=1e-9)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert (result.barycentrics[~result.mask] == 0).all()


@pytest.mark.parametrize("near_first", [True, False])
def test_the_nearer_of_two_overlapping_triangles_wins(near_first: bool) -> None:
    near = lift(np.array([[5.0, 5.0], [45.0, 8.0], [20.0, 40.0]]), np.full(3, 2.0))
    far = lift(np.array([[15.0, 2.0], [60.0, 20.0], [25.0, 45.0]]), np.full(3, 3.0))
    vertices = np.concatenate([near, far] if near_first else [far, near])
    near_face, far_face = (0, 1) if near_first else (1, 0)
    result = render(vertices, np.array([[0, 1, 2], [3, 4, 5]]), SCREEN)
    alone = [render(part, np.array([[0, 1, 2]]), SCREEN).mask for part in (near, far)]
    both = alone[0] & alone[1]
    assert both.sum() > 100 and (alone[1] & ~alone[0]).sum() > 100
    assert (result.face_index[both] == near_face).all()
    assert (result.face_index[alone[1] & ~alone[0]] == far_face).all()
    np.testing.assert_allclose(result.depth[both], 2.0, atol=1e-12)
    np.testing.assert_array_equal(result.mask, alone[0] | alone[1])


def cube(side: float) -> tuple[np.ndarray, np.ndarray]:
    """A cube centred at the origin: 8 vertices, 12 triangles (mixed windings are fine: no culling)."""
    vertices = (np.indices((2, 2, 2)).reshape(3, -1).T - 0.5) * side
    quads = [[0, 1, 3, 2], [4, 5, 7, 6], [0, 1, 5, 4], [2, 3, 7, 6], [0, 2, 6, 4], [1, 3, 7, 5]]
    faces = [triangle for a, b, c, d in quads for triangle in ([a, b, c], [a, c, d])]
    return vertices, np.array(faces)


def test_a_cube_silhouette_is_its_projected_convex_hull() -> None:
    rotation, translation = look_at(
        np.array([1.3, -1.1, -2.2]), np.array([0.05, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    )
    camera = Camera(fx=70.0, fy=70.0, cx=31.5, cy=23.5, R=rotation, t=translation, width=WIDTH, height=HEIGHT)
    vertices, faces = cube(0.8)
    result = render(vertices, faces, camera)
    hull = ConvexHull(camera.project(vertices)[0])
    # Signed distances of every pixel centre to the hull's edges (<= 0 inside).
    distance = (
        (pixel_centres() @ hull.equations[:, :2].T + hull.equations[:, 2]).max(axis=1).reshape(HEIGHT, WIDTH)
    )
    clear = np.abs(distance) > 1e-9
    np.testing.assert_array_equal(result.mask[clear], (distance <= 0)[clear])
    # And the pixel count is the area (hull.volume, in 2D) within the lattice-count bound.
    assert abs(result.mask.sum() - hull.volume) <= hull.area / 2 + 1  # hull.area: the perimeter
    # The cube's depth at its projected centre is that of its nearest face, not its far one.
    centre = np.rint(camera.project(np.zeros((1, 3)))[0][0]).astype(int)
    assert result.depth[centre[1], centre[0]] < np.linalg.norm(camera.center) - 0.3


def test_colours_are_the_vertex_colours_exactly_at_the_vertices() -> None:
    corners = np.array([[8.0, 6.0], [50.0, 10.0], [30.0, 40.0], [56.0, 42.0]])  # on pixel centres
    vertices = lift(corners, np.array([1.5, 3.0, 2.0, 4.0]))
    colors = np.array([[255.0, 0.0, 0.0], [0.0, 255.0, 0.0], [0.0, 0.0, 255.0], [10.0, 200.0, 90.0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    result = render(vertices, faces, SCREEN, vertex_colors=colors, background=(7, 7, 7))
    columns, rows = corners.astype(int).T
    np.testing.assert_array_equal(result.image[rows, columns], colors.astype(np.uint8))
    for vertex, (column, row) in enumerate(corners.astype(int)):
        face = result.face_index[row, column]
        expected = (faces[face] == vertex).astype(float)
        np.testing.assert_allclose(result.barycentrics[row, column], expected, atol=1e-12)
    assert (result.image[~result.mask] == 7).all()


def test_interior_colours_are_perspective_correct() -> None:
    # A colour affine in world x: perspective-correct barycentrics reproduce it at each pixel's
    # surface point; screen-space ones would not (depths 1 to 4 here).
    corners = np.array([[2.0, 2.0], [60.0, 4.0], [20.0, 45.0]])
    vertices = lift(corners, np.array([1.0, 4.0, 2.0]))
    colors = np.column_stack([100 + 35 * vertices[:, 0], np.full(3, 50.0), np.full(3, 60.0)])
    result = render(vertices, np.array([[0, 1, 2]]), SCREEN, vertex_colors=colors)
    points = lift(pixel_centres()[result.mask.ravel()], result.depth[result.mask])
    expected = 100 + 35 * points[:, 0]
    assert np.ptp(expected) > 100 and 0 <= expected.min() and expected.max() <= 255
    np.testing.assert_allclose(result.image[result.mask][:, 0], expected, atol=0.5 + 1e-9)


def test_a_texture_is_looked_up_at_the_interpolated_uv_with_v_up() -> None:
    # A 2 x 2 texture on a screen-aligned square: v up, so the texture's top row (v = 1) is
    # drawn at the top of the square (small image rows).
    texture = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 0]]], np.uint8)
    corners = np.array([[10.0, 5.0], [50.0, 5.0], [50.0, 45.0], [10.0, 45.0]])
    vertices = lift(corners, np.full(4, 2.0))
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    corner_uv = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    result = render(vertices, faces, SCREEN, uv=corner_uv[faces], texture=texture)
    # Texel centres are at u, v in {0.25, 0.75}: pixels 20 and 40 (of 10..50) on each axis.
    for (row, column), texel in zip(
        [(15, 15), (15, 45), (45 - 2, 15), (43, 45)], [(0, 0), (0, 1), (1, 0), (1, 1)]
    ):
        np.testing.assert_array_equal(result.image[row, column], texture[texel])
    # Halfway between texel centres (u = 0.5 at column 30, v = 0.75 at row 15): the mean of two.
    np.testing.assert_allclose(result.image[15, 30], texture[0].mean(axis=0), atol=1)


def test_a_texture_covering_more_than_32767_pixels_is_looked_up() -> None:
    """cv2.remap refuses maps of 32767+ columns: 40,000 textured pixels, the four texels'
    colours in their quadrants."""
    camera = Camera(fx=256.0, fy=256.0, cx=127.5, cy=127.5, R=np.eye(3), t=np.zeros(3), width=256, height=256)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * 200 / 256
    vertices = np.column_stack([corners, np.ones(4)])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    texture = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 0]]], np.uint8)
    corner_uv = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    result = render(vertices, faces, camera, uv=corner_uv[faces], texture=texture)
    assert result.mask.sum() == 200 * 200
    for (row, column), texel in zip(
        [(40, 40), (40, 215), (215, 40), (215, 215)], [(0, 0), (0, 1), (1, 0), (1, 1)]
    ):
        np.testing.assert_array_equal(result.image[row, column], texture[texel])


def test_small_chunks_give_the_same_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    vertices = lift(rng.uniform([0, 0], [WIDTH, HEIGHT], (60, 2)), rng.uniform(1, 3, 60))
    faces = rng.integers(0, 60, (40, 3))
    whole = render(vertices, faces, SCREEN)
    monkeypatch.setattr(render_module, "CHUNK_CANDIDATES", 50)  # tens of chunks, split faces
    assert len(render_module._chunks(np.arange(40), np.full(40, 30))) > 10
    chunked = render(vertices, faces, SCREEN)
    np.testing.assert_array_equal(chunked.face_index, whole.face_index)
    np.testing.assert_array_equal(chunked.depth, whole.depth)


@pytest.mark.parametrize("chunk", [render_module.CHUNK_CANDIDATES, 50])
def test_a_depth_tie_goes_to_the_lower_face_index(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(render_module, "CHUNK_CANDIDATES", chunk)  # 50: the copies in other chunks
    vertices = lift(np.array([[5.0, 5.0], [40.0, 8.0], [20.0, 30.0]]), np.array([1.0, 2.0, 3.0]))
    result = render(vertices, np.array([[0, 1, 2]] * 4), SCREEN)  # copies: depths equal to the bit
    assert result.mask.sum() > 300 and (result.face_index[result.mask] == 0).all()


def test_nothing_in_view_renders_the_background() -> None:
    off_screen = lift(np.array([[-30.0, 5.0], [-5.0, 5.0], [-10.0, 30.0]]), np.ones(3))
    for faces in (np.zeros((0, 3), int), np.array([[0, 1, 2]])):
        result = render(off_screen, faces, SCREEN, background=(1, 2, 3))
        assert not result.mask.any() and (result.face_index == -1).all()
        assert (result.image == [1, 2, 3]).all()


TRIANGLE = lift(np.array([[5.0, 5.0], [40.0, 8.0], [20.0, 30.0]]), np.full(3, 2.0))
FACE = np.array([[0, 1, 2]])


@pytest.mark.parametrize(
    "vertices, faces, options, error, message",
    [
        (TRIANGLE[:, :2], FACE, {}, ShapeError, r"vertices must be an \(N, 3\)"),
        (np.where(np.eye(3, dtype=bool), np.nan, TRIANGLE), FACE, {}, ConfigError, "vertices must be finite"),
        (TRIANGLE, np.array([[0, 1, 3]]), {}, ShapeError, "faces index vertices 0..2"),
        (TRIANGLE, np.array([[0.0, 1.0, 2.0]]), {}, ShapeError, "integer array"),
        (TRIANGLE * [1, 1, -1], FACE, {}, ConfigError, "behind the camera"),
        (TRIANGLE, FACE, {"vertex_colors": np.zeros((2, 3))}, ShapeError, "one row per vertex"),
        (
            TRIANGLE,
            FACE,
            {"vertex_colors": np.zeros((3, 3)), "texture": np.zeros((2, 2, 3), np.uint8)},
            ConfigError,
            "not both",
        ),
        (
            TRIANGLE,
            FACE,
            {"texture": np.zeros((2, 2, 3), np.uint8)},
            ConfigError,
            "uv and texture go together",
        ),
        (TRIANGLE, FACE, {"uv": np.zeros((1, 3, 2)), "texture": np.zeros((2, 2, 3))}, ShapeError, "uint8"),
        (
            TRIANGLE,
            FACE,
            {"uv": np.zeros((3, 2)), "texture": np.zeros((2, 2, 3), np.uint8)},
            ShapeError,
            r"uv must be \(F, 3, 2\)",
        ),
        (TRIANGLE, FACE, {"background": (0, 0, 300)}, ConfigError, "background must be 3 channel values"),
    ],
    ids=[
        "vertices-2d",
        "vertices-nan",
        "face-out-of-range",
        "faces-float",
        "behind-camera",
        "colours-rows",
        "colours-and-texture",
        "texture-without-uv",
        "texture-float",
        "uv-per-vertex",
        "background-300",
    ],
)
def test_bad_input_gives_one_line(
    vertices: np.ndarray, faces: np.ndarray, options: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        render(vertices, faces, SCREEN, **options)
    assert isinstance(caught.value, EdgeVisionError) and "\n" not in str(caught.value)
