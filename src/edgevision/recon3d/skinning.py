"""Linear blend skinning (the posing function W of SMPL, which Alldieck et al. Eq. 1 reuse).

Pose convention (SMPL's): joint ``j`` turns by the axis-angle ``pose[j]`` about its rest-pose
head, in axes parallel to the world's at rest, after its parent's motion; the root's row is the
body's global orientation (about the root joint), and ``translation`` moves everything after.
"""

from __future__ import annotations

import torch

# Below this squared angle (rad^2) sin(t)/t and (1 - cos t)/t^2 use their Taylor series, whose
# next terms (t^4/120, t^4/720) are then under 1e-14: exact in float64, and finite gradients at 0.
_SMALL_ANGLE_SQUARED = 1e-6


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: ``(..., 3)`` axis * angle (radians) -> ``(..., 3, 3)`` rotations;
    differentiable everywhere, the zero vector included."""
    squared = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = squared < _SMALL_ANGLE_SQUARED
    safe = torch.where(small, torch.ones_like(squared), squared)
    angle = safe.sqrt()
    sinc = torch.where(small, 1 - squared / 6, torch.sin(angle) / angle)
    cosc = torch.where(small, 0.5 - squared / 24, (1 - torch.cos(angle)) / safe)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sinc * skew + cosc * (skew @ skew)


def rigid(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` and ``(..., 3)`` -> the ``(..., 4, 4)`` homogeneous transform."""
    top = torch.cat([rotation, translation[..., None]], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def bone_transforms(rotations: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """The skinning transform of each bone: rest pose -> posed, ``(J, 4, 4)``.

    Args:
        rotations: ``(J, 3, 3)`` each joint's rotation relative to its parent.
        joints: ``(J, 3)`` rest-pose joint positions, metres.
        parents: ``(J,)`` parent indices, -1 for the root, every parent before its children.
    """
    offsets = joints - torch.where(
        parents[:, None] >= 0, joints[parents.clamp(min=0)], torch.zeros_like(joints)
    )
    local = rigid(rotations, offsets)
    world = [local[0]]
    for joint in range(1, len(parents)):
        world.append(world[int(parents[joint])] @ local[joint])
    world = torch.stack(world)
    # G_j [I | -j]: a rest-pose point is first taken relative to its joint, then moved.
    moved = world[:, :3, 3] - (world[:, :3, :3] @ joints[:, :, None])[..., 0]
    return rigid(world[:, :3, :3], moved)


def blend_transforms(weights: torch.Tensor, bones: torch.Tensor) -> torch.Tensor:
    """Per-vertex transforms ``(V, 4, 4)``: the skinning-weighted sum of ``(J, 4, 4)`` bone
    transforms with ``(V, J)`` weights. Their 3x3 part is not a rotation in general (LBS)."""
    return torch.einsum("vj,jab->vab", weights, bones)


def apply_transforms(transforms: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``(N, 4, 4)`` affine transforms applied to ``(N, 3)`` points, one each."""
    return (transforms[:, :3, :3] @ points[:, :, None])[..., 0] + transforms[:, :3, 3]
