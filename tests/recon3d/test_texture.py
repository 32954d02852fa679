"""Texture stitching: the atlas's texel convention, the weighted median against a brute-force
minimiser, a frontal view outvoting grazing ones, a painted body rendered from a turning sequence
stitched back into its texture, the filling of texels no frame sees, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion
from scipy.spatial import cKDTree

from edgevision.errors import ConfigError, ShapeError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.camera import Camera, look_at
from edgevision.recon3d.render import render
from edgevision.recon3d.texture import atlas_texels, build_texture, stitch_texture, weighted_median

UP = np.array([0.0, 1.0, 0.0])
RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR

# A 1 m square in the plane z = 0 facing +z, its UVs the whole atlas.
QUAD = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])
QUAD_UVS = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def test_each_atlas_texel_centre_is_the_uv_its_barycentrics_give(full_body: BodyModel) -> None:
    size = 64
    uvs, face_uvs = full_body.uvs.numpy(), full_body.face_uvs.numpy()
    atlas = atlas_texels(uvs, face_uvs, size)
    mixed = np.einsum("nk,nkc->nc", atlas.barycentrics, uvs[face_uvs[atlas.faces]])
    centres = np.column_stack([(atlas.columns + 0.5) / size, 1.0 - (atlas.rows + 0.5) / size])
    np.testing.assert_allclose(mixed, centres, atol=1e-9)
    assert (atlas.barycentrics >= -1e-12).all()
    # The body's charts do not overlap: the texels inside are the UV triangles' total area.
    corners = uvs[face_uvs] * size
    side, other = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = np.abs(side[:, 0] * other[:, 1] - side[:, 1] * other[:, 0]).sum() / 2
    assert abs(len(atlas.faces) - area) < 0.02 * area


def test_weighted_median_is_the_lowest_minimiser_of_the_weighted_deviation() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, (300, 5, 3)).astype(float)  # ties on purpose
    weights = rng.uniform(0, 1, (300, 5)) * (rng.uniform(size=(300, 5)) > 0.3)
    weights[0] = 0.0
    result = weighted_median(values, weights)
    for n in range(len(values)):
        for c in range(3):
            candidates = values[n, :, c]
            cost = np.abs(candidates[:, None] - candidates[None, :]) @ weights[n]  # cost at each
            lowest = candidates[np.isclose(cost, cost.min())].min()
            assert result[n, c] == lowest


def _quad_views(angles_deg: list[float]) -> list[Camera]:
    """64x48 cameras 2 m from the quad's centre, turned about the vertical by ``angles``."""
    cameras = []
    for angle in np.radians(angles_deg):
        eye = 2.0 * np.array([np.sin(angle), 0.0, np.cos(angle)])
        rotation, translation = look_at(eye, np.zeros(3), UP)
        cameras.append(
            Camera(fx=60.0, fy=60.0, cx=31.5, cy=23.5, R=rotation, t=translation, width=64, height=48)
        )
    return cameras


def _stitch_quad(angles_deg: list[float], colours: list[tuple[int, int, int]], **options: object):
    cameras = _quad_views(angles_deg)
    images = [np.full((48, 64, 3), colour, np.uint8) for colour in colours]
    masks = [np.ones((48, 64), bool)] * len(cameras)
    verts = [QUAD] * len(cameras)
    return stitch_texture(verts, QUAD_FACES, QUAD_FACES, QUAD_UVS, cameras, images, masks, 16, **options)


def test_a_frontal_view_outvotes_two_grazing_ones() -> None:
    # One frontal red view, two blue ones at 70 degrees: an unweighted median would say blue.
    stitched = _stitch_quad([0.0, 70.0, -70.0], [RED, BLUE, BLUE])
    assert stitched.seen.mean() > 0.9
    np.testing.assert_array_equal(
        stitched.texture[stitched.seen], np.broadcast_to(RED, (stitched.seen.sum(), 3))
    )
    # A texel's weight is the cosine between the quad's normal (+z) and its direction to the
    # camera: from 1 to 0.94 across the square for the frontal view, 0.28 to 0.44 at 70 degrees.
    frontal = _cosines(0.0, 16)[stitched.seen]
    np.testing.assert_allclose(stitched.best_cosine[stitched.seen], frontal, atol=1e-9)
    grazing = _stitch_quad([70.0], [BLUE])
    assert grazing.seen.mean() > 0.5
    np.testing.assert_allclose(grazing.best_cosine[grazing.seen], _cosines(70.0, 16)[grazing.seen], atol=1e-9)
    assert grazing.best_cosine[grazing.seen].max() < 0.5 < 0.94 < frontal.min()
    np.testing.assert_array_equal(
        grazing.texture[grazing.seen], np.broadcast_to(BLUE, (grazing.seen.sum(), 3))
    )


def _cosines(angle_deg: float, size: int) -> np.ndarray:
    """(size, size): for each texel's point on the quad, the cosine between +z and its
    direction to the camera of :func:`_quad_views` at ``angle_deg``."""
    u, v = _grid_uv(size)
    points = np.stack([u - 0.5, v - 0.5, np.zeros_like(u)], axis=-1)
    angle = np.radians(angle_deg)
    towards = 2.0 * np.array([np.sin(angle), 0.0, np.cos(angle)]) - points
    return towards[..., 2] / np.linalg.norm(towards, axis=-1)


def test_a_view_from_behind_sees_nothing() -> None:
    with pytest.raises(ConfigError, match="no texel"):
        _stitch_quad([180.0], [RED])


def _painted(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The known texture, BGR in [28, 228]: smooth waves across the atlas, different per channel,
    with no symmetry that a flipped or shifted lookup would keep."""
    return np.stack(
        [
            128 + 100 * np.sin(2 * np.pi * (3 * u + v)),
            128 + 100 * np.sin(2 * np.pi * (u - 3 * v) + 1),
            128 + 100 * np.cos(2 * np.pi * (2 * u + 2 * v)),
        ],
        axis=-1,
    )


def _grid_uv(size: int) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = np.mgrid[0:size, 0:size]
    return (columns + 0.5) / size, 1.0 - (rows + 0.5) / size


def test_a_painted_body_seen_turning_is_stitched_back(full_body: BodyModel) -> None:
    frames, size = 8, 128
    painted = np.clip(np.rint(_painted(*_grid_uv(1024))), 0, 255).astype(np.uint8)
    faces, face_uvs, uvs = full_body.faces.numpy(), full_body.face_uvs.numpy(), full_body.uvs.numpy()
    vertices, cameras, images, masks = [], [], [], []
    camera = None
    for frame in range(frames):
        pose = torch.zeros(full_body.num_joints, 3, dtype=torch.float64)
        pose[0, 1] = 2 * np.pi * frame / frames
        posed = full_body(pose).vertices.numpy()
        if camera is None:  # 3 m in front, at the body's middle, the body filling 80% of 240 px
            middle = (posed.min(axis=0) + posed.max(axis=0)) / 2
            rotation, translation = look_at(middle + [0.0, 0.0, 3.0], middle, UP)
            focal = 0.8 * 120 * 3.0 / ((posed[:, 1].max() - posed[:, 1].min()) / 2)
            camera = Camera(
                fx=focal, fy=focal, cx=159.5, cy=119.5, R=rotation, t=translation, width=320, height=240
            )
        seen = render(posed, faces, camera, uv=uvs[face_uvs], texture=painted)
        vertices.append(posed)
        cameras.append(camera)
        images.append(seen.image)
        masks.append(seen.mask)
    stitched = stitch_texture(vertices, faces, face_uvs, uvs, cameras, images, masks, size)
    np.testing.assert_array_equal(
        stitched.texture, build_texture(vertices, faces, face_uvs, uvs, cameras, images, masks, size)
    )

    atlas = np.zeros((size, size), bool)
    inside = atlas_texels(uvs, face_uvs, size)
    atlas[inside.rows, inside.columns] = True
    assert not (stitched.seen & ~atlas).any()
    assert stitched.seen.sum() > 0.8 * atlas.sum()  # measured 90%: soles, armpits, inner thighs unseen
    error = np.abs(stitched.texture - _painted(*_grid_uv(size))).mean(axis=2)
    # Away from the charts' borders: there the painted waves jump on the body (a seam joins two
    # unrelated places of the atlas), and a pixel mixes both. A half-texel shift of the lookup
    # alone makes about 4.5 grey levels; a v flip about 60.
    interior = stitched.seen & binary_erosion(atlas, iterations=2)
    assert interior.sum() > 0.7 * atlas.sum()
    assert error[interior].mean() < 1.5  # measured 0.63
    assert np.median(error[interior]) < 1.0  # measured 0.33
    assert error[stitched.seen].mean() < 3.5  # measured 2.14, the borders included

    # Every texel no frame saw, in the atlas or between its charts, has the colour of a nearest
    # seen texel (ties: any of them).
    seen_at = np.argwhere(stitched.seen)
    tree = cKDTree(seen_at)
    unseen_at = np.argwhere(~stitched.seen)
    assert (atlas & ~stitched.seen).sum() > 100
    nearest, _ = tree.query(unseen_at)
    for point, distance in zip(unseen_at[::7], nearest[::7], strict=True):
        sources = seen_at[tree.query_ball_point(point, distance + 1e-9)]
        colours = stitched.texture[sources[:, 0], sources[:, 1]]
        assert (colours == stitched.texture[point[0], point[1]]).all(axis=1).any()


def test_bad_input_fails_in_one_line() -> None:
    cameras = _quad_views([0.0])
    image, mask = np.zeros((48, 64, 3), np.uint8), np.ones((48, 64), bool)
    good = dict(
        body_vertices_per_frame=[QUAD],
        faces=QUAD_FACES,
        face_uvs=QUAD_FACES,
        uvs=QUAD_UVS,
        cameras=cameras,
        images=[image],
        masks=[mask],
        size=16,
    )
    bad_inputs = {
        "per frame": dict(images=[image, image]),
        "image 0": dict(images=[np.zeros((48, 63, 3), np.uint8)]),
        "mask 0": dict(masks=[mask.astype(np.uint8)]),
        "finite": dict(body_vertices_per_frame=[np.where(QUAD == 0.5, np.nan, QUAD)]),
        "face_uvs": dict(face_uvs=QUAD_FACES[:1]),
        "faces": dict(faces=QUAD_FACES + 4),
        "size": dict(size=1),
        "camera 0": dict(cameras=["camera.json"]),
    }
    for problem, change in bad_inputs.items():
        with pytest.raises((ShapeError, ConfigError), match=problem) as caught:
            build_texture(**{**good, **change})
        assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="no texel"):
        build_texture(**{**good, "masks": [np.zeros((48, 64), bool)]})
