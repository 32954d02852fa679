"""What turns a photo into a network input: channel order, per-channel mean and std, size.

Models declare it (``input_preprocessing``); a plan stores it with its input binding, so whoever
runs the plan (``edgevision run``, the calibration reader, the benchmarks) prepares images exactly
as the network was trained to see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from torch import nn

from edgevision.errors import ConfigError


@dataclass(frozen=True)
class Preprocessing:
    """``(image[order] - mean) / std`` per channel, after a resize to the network input.

    Attributes:
        channel_order: ``"BGR"`` or ``"RGB"``: the order the network takes.
        mean: per network input channel, in pixel units (0-255).
        std: per network input channel, in pixel units.
        pixels: the network does the mean and std itself (a pixel-input plan) and takes
            ``(H, W, 3)`` uint8 pixels in ``channel_order``.
    """

    channel_order: str = "BGR"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pixels: bool = False

    def __post_init__(self) -> None:
        if self.channel_order not in ("BGR", "RGB") or len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"preprocessing needs BGR/RGB and 3 means and stds, got {self}")

    def apply(self, image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``(H, W, 3)`` uint8 BGR -> ``(3, *size)`` float32 network input (linear resize, aspect
        ratio not kept: the network input is fixed), or ``(*size, 3)`` uint8 pixels in
        ``channel_order`` when ``pixels``."""
        return self.network_input(cv2.resize(image_bgr, (size[1], size[0]), interpolation=cv2.INTER_LINEAR))

    def network_input(self, image_bgr: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` BGR (uint8, or float32 after a float resize) at the network's size ->
        ``(3, H, W)`` float32 ``(image[order] - mean) / std``, or ``(H, W, 3)`` uint8 pixels in
        ``channel_order`` (rounded) when ``pixels``."""
        image = image_bgr[:, :, ::-1] if self.channel_order == "RGB" else image_bgr
        if self.pixels:
            if image.dtype != np.uint8:
                image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
            return np.ascontiguousarray(image)
        image = (image.astype(np.float32) - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        return np.ascontiguousarray(image.transpose(2, 0, 1))

    def as_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        return cls(
            str(data["channel_order"]),
            tuple(data["mean"]),
            tuple(data["std"]),
            bool(data.get("pixels", False)),
        )


# torchvision's ImageNet normalisation, in pixel units, on RGB: every ImageNet backbone here.
IMAGENET_RGB = Preprocessing(
    "RGB", (0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)
)
# Face recognition crops (MobileFaceNet, as InsightFace trains it): RGB, (x - 127.5) / 128.
FACE_RGB = Preprocessing("RGB", (127.5, 127.5, 127.5), (128.0, 128.0, 128.0))


def model_preprocessing(model: nn.Module) -> Preprocessing:
    """The preprocessing a model declares (``input_preprocessing``), else raw BGR pixels."""
    declared = getattr(model, "input_preprocessing", None)
    return declared if declared is not None else Preprocessing()
