"""Image in, :class:`Detections` out, for single-shot anchor detectors such as FaceBoxes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from edgevision.data.io import check_pixel_count, read_image
from edgevision.data.transforms import to_network_input
from edgevision.detection.detections import Detections
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import ConfigError, ShapeError
from edgevision.validation import check_number

ANCHOR_CACHE_SIZE = 8  # input sizes whose anchors are kept (a video has one; WIDER val has many)
# The largest resize factor: well past the up-scaling that face detectors are tested with, and
# far below the 1e6 that asked for a 3e18-byte resize. The scaled image must also stay within the
# pixel cap (edgevision.data.io.max_pixels_limit).
MAX_SCALE = 8.0


def check_scale(scale: float, name: str = "scale") -> float:
    """``scale`` when it is a finite number in ``(0, MAX_SCALE]``, else a :class:`ConfigError`."""
    return check_number(name, scale, 0.0, MAX_SCALE, low_open=True)


def default_device() -> torch.device:
    """A CUDA device when one is present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Detector:
    """Runs a detector network on images.

    The network takes ``(1, 3, H, W)`` mean-subtracted BGR (``(1, H, W, 3)`` uint8 BGR pixels when
    its ``takes_pixels`` is true: a pixel-input plan) and returns ``(loc, conf)``; it provides
    ``anchors((H, W))``, ``coder`` and ``config.mean_bgr`` (as :class:`FaceBoxes` does).

    ``max_pixels`` caps the network input (the image after ``scale``), as it caps images read;
    ``None`` is the default cap (:func:`edgevision.data.io.max_pixels_limit`).
    """

    def __init__(
        self,
        model: nn.Module,
        postprocess: PostProcess | None = None,
        device: torch.device | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.device = device or default_device()
        self.model = model.to(self.device).eval()
        self.postprocess = postprocess or PostProcess()
        self.max_pixels = max_pixels
        self._anchors: dict[tuple[int, int], torch.Tensor] = {}

    def anchors(self, size: tuple[int, int]) -> torch.Tensor:
        """Cached ``(A, 4)`` anchors for an ``(H, W)`` network input."""
        if size not in self._anchors:
            if len(self._anchors) >= ANCHOR_CACHE_SIZE:  # evict the oldest size
                self._anchors.pop(next(iter(self._anchors)))
            self._anchors[size] = self.model.anchors(size).to(self.device)
        return self._anchors[size]

    @torch.no_grad()
    def detect(self, image: np.ndarray | str | Path, scale: float = 1.0) -> Detections:
        """Detect faces in an ``(H, W, 3)`` uint8 BGR image (or an image file).

        ``scale`` resizes the image before the network (1.0: native resolution, as the WIDER FACE
        protocol runs FaceBoxes); boxes are returned in the original image's pixels.

        Raises:
            ConfigError: ``scale`` is not in ``(0, MAX_SCALE]`` or shrinks the image to nothing.
            ImageDecodeError: the scaled image is over the pixel cap.
        """
        scale = check_scale(scale)
        if isinstance(image, (str, Path)):
            image = read_image(image, max_pixels=self.max_pixels)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")
        height, width = round(image.shape[0] * scale), round(image.shape[1] * scale)
        if min(height, width) < 1:
            raise ConfigError(
                f"scale {scale:g} shrinks the {image.shape[1]}x{image.shape[0]} image to nothing"
            )
        check_pixel_count(width, height, self.max_pixels, f"the image scaled by {scale:g}")
        if scale != 1.0:  # resized in float32, as FaceBoxes.PyTorch's test code does
            image = cv2.resize(
                image.astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR
            )
        size = (image.shape[0], image.shape[1])
        if getattr(self.model, "takes_pixels", False):
            pixels = image if image.dtype == np.uint8 else np.clip(np.rint(image), 0, 255).astype(np.uint8)
            inputs = torch.from_numpy(np.ascontiguousarray(pixels))[None].to(self.device)
        else:
            inputs = to_network_input(image, self.model.config.mean_bgr)[None].to(self.device)
        loc, conf = self.model(inputs)
        scores = torch.softmax(conf[0], dim=1)[:, 1]
        return self.postprocess(loc[0], scores, self.anchors(size), self.model.coder, scale).to("cpu")
