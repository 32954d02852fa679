"""The synthetic person's known appearance (the ground truth of the texture step, Alldieck et al.
2018, Sec. 3.4) and the static background it turns in front of.

The paint is a colour for every point of the body's rest surface (the template, before shape and
offsets, so it sticks to the skin whatever the shape): a base colour per body part (shirt, skin,
trousers, shoes), blended by the skinning weights so that it changes smoothly across a joint,
plus one smooth wave per channel along a fixed direction of the body, of 12 to 25 cm wavelength:
structure a stitched texture can be compared with, resolved by a few pixels at the benchmark's
3.5 mm a pixel. Being a function of the 3D point, not of the UV atlas, it has no seams, and the
full body and a decimated one look the same. BGR, within [10, 240]: nothing is clipped.

The background: a colour gradient plus smooth noise (a few pixels' correlation) drawn from the
scene's generator, so that background subtraction has a textured, not flat, image to subtract.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.texture import atlas_texels
from edgevision.validation import check_integer

# Base colours (B, G, R) of the body parts, by bone name without the side.
PART_COLOURS = {
    (60.0, 150.0, 90.0): ("root", "spine05", "spine03", "spine01", "clavicle"),  # a green shirt
    (110.0, 140.0, 195.0): ("upperarm01", "lowerarm01", "wrist", "neck01", "head"),  # skin
    (150.0, 80.0, 60.0): ("upperleg01", "lowerleg01"),  # blue trousers
    (55.0, 60.0, 70.0): ("foot",),  # dark shoes
}
# Per channel (B, G, R): amplitude * sin(2 pi (direction . x) / wavelength + phase), x the rest
# point in metres; the directions are unit vectors in the body's frame (y up, x to its left).
PAINT_WAVES = (
    (45.0, (1.0, 0.0, 0.0), 0.12, 0.0),
    (45.0, (0.0, 0.8, 0.6), 0.18, 1.0),
    (45.0, (0.6, 0.0, -0.8), 0.25, 2.0),
)
BACKGROUND_NOISE = 10.0  # grey levels: the std of the background's smooth (grey) noise
BACKGROUND_GRAIN = 3.0  # pixels: the noise's correlation length (Gaussian blur sigma)


def paint(points: np.ndarray, weights: np.ndarray, bone_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The ``(N, 3)`` float64 BGR colours of rest-surface points ``(N, 3)`` (metres) with skinning
    ``weights`` ``(N, J)`` on the bones ``bone_names`` (see the module docstring)."""
    part = {name: colour for colour, names in PART_COLOURS.items() for name in names}
    bone_colours = np.array([part[name.split(".")[0]] for name in bone_names])
    colours = np.asarray(weights, dtype=np.float64) @ bone_colours
    for channel, (amplitude, direction, wavelength, phase) in enumerate(PAINT_WAVES):
        colours[:, channel] += amplitude * np.sin(2 * math.pi * (points @ direction) / wavelength + phase)
    return colours


def vertex_paint(body: BodyModel) -> np.ndarray:
    """``(V, 3)`` float64 BGR: the paint at the body's rest vertices (for a body without UVs)."""
    return paint(body.template.double().numpy(), body.weights.double().numpy(), body.bone_names)


def painted_texture(body: BodyModel, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8 BGR: the paint in the body's UV atlas, each texel the colour of
    its point on the rest surface (:func:`edgevision.recon3d.texture.atlas_texels`). Texels
    outside every chart take the nearest chart texel's colour, so that bilinear lookups at a
    chart's edge read the paint, not black."""
    check_integer("size", size, 2)
    atlas = atlas_texels(body.uvs.double().numpy(), body.face_uvs.numpy(), size)
    corners = body.faces.numpy()[atlas.faces]  # (N, 3) vertex indices of each texel's face
    points = np.einsum("nk,nkc->nc", atlas.barycentrics, body.template.double().numpy()[corners])
    weights = np.einsum("nk,nkj->nj", atlas.barycentrics, body.weights.double().numpy()[corners])
    texture = np.zeros((size, size, 3), np.uint8)
    texture[atlas.rows, atlas.columns] = np.clip(np.rint(paint(points, weights, body.bone_names)), 0, 255)
    outside = np.ones((size, size), bool)
    outside[atlas.rows, atlas.columns] = False
    rows, columns = distance_transform_edt(outside, return_distances=False, return_indices=True)
    return texture[rows, columns]


def background_image(width: int, height: int, generator: torch.Generator) -> np.ndarray:
    """``(height, width, 3)`` uint8 BGR: a diagonal colour gradient (a lit wall) plus smooth grey
    noise of ``BACKGROUND_NOISE`` levels drawn from ``generator``."""
    rows, columns = np.mgrid[0:height, 0:width]
    x, y = columns / max(width - 1, 1), rows / max(height - 1, 1)
    gradient = np.stack([110 + 50 * x, 120 + 40 * y, 140 - 40 * x + 20 * y], axis=-1)
    noise = torch.randn(height, width, generator=generator, dtype=torch.float64).numpy()
    noise = cv2.GaussianBlur(noise, (0, 0), BACKGROUND_GRAIN)
    noise *= BACKGROUND_NOISE / max(float(noise.std()), 1e-12)
    return np.clip(np.rint(gradient + noise[..., None]), 0, 255).astype(np.uint8)
