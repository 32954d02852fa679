"""Training augmentation of aligned face crops (what an embedding network learns from): a mirror,
a small scale and shift jitter, brightness and contrast. Small, because the crops are aligned:
the network is to see faces as the aligner places them, not learn to find them.

Whether a crop was mirrored is returned with it: a distillation target must be the teacher's
embedding of the same (mirrored or not) face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgevision.validation import check_number


@dataclass(frozen=True)
class FaceAugment:
    """Random mirror, scale/shift jitter and brightness/contrast of a face crop.

    Attributes:
        flip: probability of a horizontal mirror.
        scale: the zoom is drawn uniformly in ``[1 - scale, 1 + scale]`` (about the centre).
        shift: the shift, in fractions of the side, uniformly in ``[-shift, shift]`` per axis.
        brightness: an offset of up to ``brightness * 255`` grey levels, either sign.
        contrast: a gain about the mean grey in ``[1 - contrast, 1 + contrast]``.
    """

    flip: float = 0.5
    scale: float = 0.05
    shift: float = 0.04
    brightness: float = 0.1
    contrast: float = 0.2

    def __post_init__(self) -> None:
        check_number("flip", self.flip, 0.0, 1.0)
        for name in ("scale", "shift", "brightness", "contrast"):
            check_number(name, getattr(self, name), 0.0, 0.5)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        """``(H, W, 3)`` uint8 BGR -> the augmented ``(H, W, 3)`` uint8 and whether it was
        mirrored. A pure function of ``image`` and ``rng``'s draws (always the same number)."""
        flipped = bool(rng.random() < self.flip)
        zoom = 1.0 + rng.uniform(-self.scale, self.scale)
        dx, dy = rng.uniform(-self.shift, self.shift, 2)
        gain = 1.0 + rng.uniform(-self.contrast, self.contrast)
        offset = rng.uniform(-self.brightness, self.brightness) * 255.0
        if flipped:
            image = image[:, ::-1]
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, zoom)
        matrix[:, 2] += (dx * width, dy * height)
        warped = cv2.warpAffine(
            np.ascontiguousarray(image), matrix, (width, height), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        grey = warped.mean()
        adjusted = (warped.astype(np.float32) - grey) * gain + grey + offset
        return np.clip(np.rint(adjusted), 0, 255).astype(np.uint8), flipped
