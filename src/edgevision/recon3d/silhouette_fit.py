"""The differentiable silhouette term of the pose fit (Alldieck et al. 2018, Sec. 3.1: SMPLify's
energy plus a silhouette term), as a symmetric chamfer distance in pixels between the observed
mask's boundary and the projected model's contour:

- model -> image: the distance transform of the observed boundary, sampled bilinearly
  (``grid_sample``) at the projected contour vertices;
- image -> model: each observed boundary pixel to its nearest projected contour vertex.

The contour vertices are found by rendering the model (:func:`contour_vertices`, no gradient);
the fit refreshes them every round, and the distances are differentiable in the vertices.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from edgevision.errors import ShapeError
from edgevision.recon3d.camera import Camera
from edgevision.recon3d.render import render
from edgevision.recon3d.silhouette import silhouette_boundary


class SilhouetteTarget:
    """One observed mask ``(H, W)`` bool, prepared: its boundary pixels ``(N, 2)`` ``(x, y)`` and
    the ``(H, W)`` distance (pixels) from each pixel centre to the nearest of them."""

    def __init__(self, mask: np.ndarray, dtype: torch.dtype = torch.float64) -> None:
        boundary = silhouette_boundary(mask)
        if not len(boundary):
            raise ShapeError("the silhouette mask is empty: no boundary to fit")
        not_boundary = np.ones(mask.shape, np.uint8)
        not_boundary[boundary[:, 1], boundary[:, 0]] = 0
        distance = cv2.distanceTransform(not_boundary, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        self.boundary = torch.as_tensor(boundary, dtype=dtype)
        self.distance = torch.as_tensor(distance, dtype=dtype)

    def model_to_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(M,)`` the distance transform at ``(M, 2)`` pixels ``(x, y)``, bilinear (pixel
        centres at integers: ``align_corners=True``); off the image, the nearest border value."""
        height, width = self.distance.shape
        scale = pixels.new_tensor([2.0 / (width - 1), 2.0 / (height - 1)])
        grid = (pixels * scale - 1.0)[None, None]  # (1, 1, M, 2)
        sampled = F.grid_sample(
            self.distance[None, None].to(pixels.dtype), grid, align_corners=True, padding_mode="border"
        )
        return sampled[0, 0, 0]

    def image_to_model(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the distance from each observed boundary pixel to the nearest of the ``(M, 2)``
        projected contour vertices (the nearest found by a k-d tree, without gradient; the
        distance to it is differentiated, which is as cheap as a gather)."""
        tree = cKDTree(pixels.detach().cpu().numpy())
        nearest = torch.as_tensor(tree.query(self.boundary.numpy())[1])
        return (self.boundary.to(pixels.dtype) - pixels[nearest]).norm(dim=1)


def contour_vertices(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """The indices ``(M,)`` of the vertices on the projected model's contour: for each boundary
    pixel of the rendered mask (holes included, as for the observed mask), the corner of the
    face seen there that projects nearest to that pixel."""
    rendered = render(vertices, faces, camera)
    boundary = silhouette_boundary(rendered.mask)
    corners = faces[rendered.face_index[boundary[:, 1], boundary[:, 0]]]  # (N, 3)
    projected, _ = camera.project(vertices)
    gaps = np.linalg.norm(projected[corners] - boundary[:, None, :], axis=2)
    return np.unique(corners[np.arange(len(corners)), gaps.argmin(axis=1)])
