"""Interim pinhole camera (torch) until ``recon3d.camera`` lands: the conventions of
:func:`edgevision.recon3d.rays.pixel_rays` (world -> camera ``R x + t``, metres; pixels ``(x,
y)`` with centres at integers when ``K``'s principal point is ``((W - 1) / 2, (H - 1) / 2)``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgevision.errors import ConfigError


@dataclass(frozen=True, eq=False)
class Camera:
    """``K`` ``(3, 3)``, ``R`` ``(3, 3)``, ``t`` ``(3,)`` tensors and the image size, pixels."""

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    width: int
    height: int

    @property
    def centre(self) -> torch.Tensor:
        """``(3,)`` the camera centre in the world, ``-R^T t``."""
        return -(self.R.T @ self.t)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """``(N, 3)`` world points -> ``(N, 2)`` pixels; a :class:`ConfigError` when one is not
        in front of the camera."""
        in_camera = points @ self.R.T + self.t
        if bool((in_camera[:, 2] <= 0).any()):
            raise ConfigError("a point to project is behind the camera")
        pixels = in_camera @ self.K.T
        return pixels[:, :2] / pixels[:, 2:]
