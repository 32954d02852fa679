"""2D keypoints: the layouts we fit (Alldieck et al. 2018, Sec. 3.1 fit the body to OpenPose's
detections), how the body predicts them, and the keypoint file.

Layouts:

- ``COCO17`` (the COCO / OpenPose order): its 12 limb keypoints are body joints (the bone heads
  of :data:`edgevision.recon3d.makehuman.KEPT_BONES`): shoulder = ``upperarm01``, elbow =
  ``lowerarm01``, wrist = ``wrist``, hip = ``upperleg01``, knee = ``lowerleg01``, ankle =
  ``foot``, each ``.L`` for the person's left. The five face keypoints (nose, eyes, ears) are
  missing: the body's head is one rigid joint with no face points; a file still carries their
  columns, and the fit ignores them. Detectors put the hips a little higher and wider than the
  rig's ball joints: a bias of a few cm on real data, none on the synthetic.
- ``BODY20``: the body's 20 joints in their own order (the synthetic benchmark's keypoints).

A keypoint file is a ``.npy`` array or a ``.json`` nested list of shape ``(frames, K, 3)``: per
frame and keypoint ``x, y`` (pixels, centres at integers as in
:mod:`edgevision.recon3d.camera`) and a confidence ``>= 0`` (0: not detected; then ``x, y`` may
be anything finite).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgevision.data.io import read_json
from edgevision.errors import DatasetError, InputFileError
from edgevision.recon3d.camera import Camera
from edgevision.recon3d.makehuman import KEPT_BONES

_LIMBS = (
    ("shoulder", "upperarm01"),
    ("elbow", "lowerarm01"),
    ("wrist", "wrist"),
    ("hip", "upperleg01"),
    ("knee", "lowerleg01"),
    ("ankle", "foot"),
)


@dataclass(frozen=True)
class KeypointLayout:
    """``names`` ``(K,)`` of the keypoints in file order; ``joints`` ``(K,)`` the body joint
    (bone name) each one is, ``None`` where the body has none."""

    name: str
    names: tuple[str, ...]
    joints: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.names)

    def predicted(self, bone_names: tuple[str, ...] | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(columns (K',), joint_indices (K',))`` int64: the layout's columns the body predicts
        and the index in ``bone_names`` of the joint that predicts each."""
        pairs = [(k, list(bone_names).index(joint)) for k, joint in enumerate(self.joints) if joint]
        columns, joints = zip(*pairs)
        return torch.tensor(columns), torch.tensor(joints)


def _coco17() -> KeypointLayout:
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    joints: list[str | None] = [None] * 5
    for part, bone in _LIMBS:
        for side, suffix in (("left", "L"), ("right", "R")):
            names.append(f"{side}_{part}")
            joints.append(f"{bone}.{suffix}")
    return KeypointLayout("coco17", tuple(names), tuple(joints))


COCO17 = _coco17()
BODY20 = KeypointLayout("body20", KEPT_BONES, KEPT_BONES)


def project(points: torch.Tensor, camera: Camera) -> torch.Tensor:
    """``(N, 3)`` world points (metres) -> ``(N, 2)`` pixels ``(u, v)``, differentiable: the
    torch twin of :meth:`Camera.project` (no depth check: the fit keeps the body in front)."""
    rotation = points.new_tensor(camera.R)
    in_camera = points @ rotation.T + points.new_tensor(camera.t)
    focal = points.new_tensor([camera.fx, camera.fy])
    centre = points.new_tensor([camera.cx, camera.cy])
    return in_camera[:, :2] / in_camera[:, 2:] * focal + centre


def predict_keypoints(joints: torch.Tensor, camera: Camera, joint_indices: torch.Tensor) -> torch.Tensor:
    """The ``(K', 2)`` pixels of the posed ``(J, 3)`` joints that ``joint_indices`` pick
    (:meth:`KeypointLayout.predicted`)."""
    return project(joints[joint_indices], camera)


def load_keypoints(
    path: str | Path, frames: int | None = None, layout: KeypointLayout = COCO17
) -> np.ndarray:
    """Read a keypoint file (see the module's docstring) as a ``(T, K, 3)`` float64 array.

    Raises:
        InputFileError: one line naming the file and the problem: missing, not ``.npy`` or
            ``.json``, unreadable, not of shape ``(frames, K, 3)`` for ``K = len(layout)``, NaN or
            inf, a negative confidence, or not ``frames`` frames when ``frames`` is given.
    """
    path = Path(path)
    expected = f"({frames if frames is not None else 'frames'}, {len(layout)}, 3)"
    array = _read_array(path)
    if array.dtype.kind not in "iuf":
        raise InputFileError(
            f"keypoint file {path} must hold numbers of shape {expected}, got {array.dtype} values"
        )
    if array.ndim != 3 or array.shape[1:] != (len(layout), 3):
        raise InputFileError(
            f"keypoint file {path} must have shape {expected} (x, y, confidence of the "
            f"{layout.name} keypoints per frame), got {array.shape}"
        )
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputFileError(f"keypoint file {path} has NaN or inf values")
    if (array[..., 2] < 0).any():
        raise InputFileError(f"keypoint file {path} has negative confidences (min {array[..., 2].min():g})")
    if frames is not None and len(array) != frames:
        raise InputFileError(f"keypoint file {path} has {len(array)} frames, the video {frames}")
    return array


def _read_array(path: Path) -> np.ndarray:
    if path.suffix == ".json":
        try:
            data = read_json(path, "keypoint file")
        except DatasetError as error:
            raise InputFileError(str(error)) from None
        try:
            return np.asarray(data)
        except ValueError:  # ragged nested lists
            raise InputFileError(f"keypoint file {path} is not a rectangular (frames, K, 3) list") from None
    if path.suffix != ".npy":
        raise InputFileError(f"keypoint file {path} must be .npy or .json")
    if not path.is_file():
        raise InputFileError(f"keypoint file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise InputFileError(f"keypoint file {path} is not a .npy array: {error}") from None
