"""Image in, :class:`Detections` out, for every registered face detector.

The detector contract (:class:`DetectorModel`): a detector model declares how an image becomes its
input (``input_preprocessing``), the pyramid scales it is tested at (``test_scales``), the
smallest input it takes (``min_input_size``), the names of its outputs, and ``decode``, which turns its
outputs into boxes and scores (and, for a detector with landmarks, each box's five landmarks).
:class:`Detector` does the rest for all of them: preprocess, forward (the torch network or a plan),
the model's decode, boxes and landmarks back to the image's pixels, every pyramid scale merged, one
shared NMS.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch

from edgevision.data.io import check_pixel_count, read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.detection.detections import Detections
from edgevision.detection.postprocess import PostProcess
from edgevision.errors import ConfigError, EdgeVisionWarning, ImageDecodeError, ShapeError
from edgevision.validation import check_number

# The largest resize factor: well past the up-scaling that face detectors are tested with, and
# far below the 1e6 that asked for a 3e18-byte resize. The scaled image must also stay within the
# pixel cap (edgevision.data.io.max_pixels_limit).
MAX_SCALE = 8.0
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")

# What a detector's decode returns: boxes and scores, or boxes, scores and landmarks.
Decoded = tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@runtime_checkable
class DetectorModel(Protocol):
    """What a registered detector (``task="detection"``) provides.

    Attributes:
        input_preprocessing: how an image becomes the network input (also what a plan records).
        test_scales: the image scales it is run at by default (1.0: the image's own size); the
            detections of all of them are merged.
        min_input_size: the smallest input side, px, it takes.
        onnx_output_names: the names of its outputs, in ``forward``'s order.
    """

    input_preprocessing: Preprocessing
    test_scales: tuple[float, ...]
    min_input_size: int
    onnx_output_names: tuple[str, ...]

    def decode(
        self,
        outputs: Sequence[torch.Tensor],
        input_size: tuple[int, int],
        *,
        scale: float = 1.0,
        scales: Sequence[float] = (1.0,),
    ) -> Decoded:
        """The first image's outputs for an ``(H, W)`` input -> ``(K, 4)`` xyxy boxes in input
        pixels and ``(K,)`` scores in [0, 1], and, from a detector with landmarks, their
        ``(K, 5, 2)`` landmarks in input pixels (see :class:`Detections`). ``scale`` is the
        pyramid scale the input was made at, one of ``scales``, the whole pyramid (a detector
        that assigns face sizes to scales, as Tiny Faces does, keeps only what ``scale`` is
        responsible for)."""
        ...


def check_scale(scale: float, name: str = "scale") -> float:
    """``scale`` when it is a finite number in ``(0, MAX_SCALE]``, else a :class:`ConfigError`."""
    return check_number(name, scale, 0.0, MAX_SCALE, low_open=True)


def parse_scales(text: str, name: str = "--scales") -> tuple[float, ...]:
    """``"0.5,1,2"`` -> ``(0.5, 1.0, 2.0)``, each checked by :func:`check_scale`.

    Raises:
        ConfigError: empty, not numbers, or a scale outside ``(0, MAX_SCALE]``.
    """
    parts = [part.strip() for part in text.split(",")]
    try:
        scales = tuple(float(part) for part in parts)
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated numbers, e.g. 0.5,1,2; got {text!r}") from None
    return tuple(check_scale(scale, f"each of {name}") for scale in scales)


def default_device() -> torch.device:
    """A CUDA device when one is present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a torch device (``None``: the detector's default, CUDA when present).

    Raises:
        ConfigError: not ``cpu``, ``cuda`` or ``cuda:N``, or a CUDA device that is not there.
    """
    if device is None:
        return None
    device = torch.device(device) if isinstance(device, str) and _DEVICE.fullmatch(device) else device
    if not isinstance(device, torch.device):
        raise ConfigError(f"the device (--device) must be cpu, cuda or cuda:N, got {device!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device} (--device): no CUDA device is available here")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device} (--device): there are {torch.cuda.device_count()} CUDA device(s)"
            )
    return device


class Detector:
    """Runs a detector on images.

    Args:
        model: a detector model (:class:`DetectorModel`); it runs the network unless ``network``
            is given, and always decodes.
        postprocess: threshold, top-k, NMS and keep settings.
        device: where the torch network runs (default: CUDA if present).
        max_pixels: caps the network input (the image after scaling), as it caps images read;
            ``None`` is the default cap (:func:`edgevision.data.io.max_pixels_limit`).
        network: runs the network in place of ``model`` (a plan: see
            :func:`edgevision.api.detector_from_engine`): ``(1, ...)`` input tensor -> outputs in
            ``model.onnx_output_names`` order.
        preprocessing: how an image becomes ``network``'s input (a pixel-input plan's); default
            ``model.input_preprocessing``.
        scales: the pyramid scales; default ``model.test_scales``.
    """

    def __init__(
        self,
        model: DetectorModel,
        postprocess: PostProcess | None = None,
        device: torch.device | None = None,
        max_pixels: int | None = None,
        *,
        network: Callable[[torch.Tensor], Sequence[torch.Tensor]] | None = None,
        preprocessing: Preprocessing | None = None,
        scales: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(model, DetectorModel):
            raise ConfigError(f"{type(model).__name__} is not a detector (see DetectorModel)")
        self.device = device or default_device()
        self.model = model.to(self.device).eval() if isinstance(model, torch.nn.Module) else model
        self.network = network or self.model
        self.preprocessing = preprocessing or model.input_preprocessing
        self.scales = tuple(
            check_scale(s, "a pyramid scale") for s in (model.test_scales if scales is None else scales)
        )
        if not self.scales:
            raise ConfigError("a detector needs at least one pyramid scale")
        self.postprocess = postprocess or PostProcess()
        self.max_pixels = max_pixels

    @torch.no_grad()
    def detect(self, image: np.ndarray | str | Path, scale: float = 1.0) -> Detections:
        """Detect faces in an ``(H, W, 3)`` uint8 BGR image (or an image file).

        ``scale`` resizes the image before the network, on top of each pyramid scale (1.0: native
        resolution, as the WIDER FACE protocol runs FaceBoxes); boxes are returned in the original
        image's pixels.

        Raises:
            ConfigError: ``scale`` is not in ``(0, MAX_SCALE]``, or the image at every pyramid
                scale is below the detector's smallest input.
            ImageDecodeError: the image at every pyramid scale is over the pixel cap (or one
                scale is under the smallest input and the others over the cap).
        """
        scale = check_scale(scale)
        if isinstance(image, (str, Path)):
            image = read_image(image, max_pixels=self.max_pixels)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")
        scales = self._scales_that_fit(image, scale)
        boxes, scores, landmarks = [], [], []
        for pyramid_scale in scales:
            factor = scale * pyramid_scale
            scaled_boxes, scaled_scores, *scaled_landmarks = self._detect_at(
                image, factor, pyramid_scale, scales
            )
            boxes.append(scaled_boxes / factor)
            scores.append(scaled_scores)
            landmarks += [points / factor for points in scaled_landmarks]
        merged_landmarks = torch.cat(landmarks) if landmarks else None
        return self.postprocess(torch.cat(boxes), torch.cat(scores), merged_landmarks).to("cpu")

    def _scales_that_fit(self, image: np.ndarray, scale: float) -> tuple[float, ...]:
        """The pyramid scales at which ``image``, also resized by ``scale``, is within the
        detector's smallest input and the pixel cap. A scale that does not fit is skipped with a
        warning (a 2x pass over a huge photo, a 0.5x pass over a thumbnail: the other scales
        still see its faces); when none fits, the first one's error is raised."""
        fitting, errors = [], {}
        for pyramid_scale in self.scales:
            try:
                self._check_input_size(image, scale * pyramid_scale)
            except (ConfigError, ImageDecodeError) as error:
                errors[pyramid_scale] = error
            else:
                fitting.append(pyramid_scale)
        if not fitting:
            raise next(iter(errors.values()))
        for pyramid_scale, error in errors.items():
            warnings.warn(
                f"pyramid scale {pyramid_scale:g} skipped: {error}", EdgeVisionWarning, stacklevel=4
            )
        return tuple(fitting)

    def _check_input_size(self, image: np.ndarray, factor: float) -> None:
        """Refuse ``image`` resized by ``factor`` when under the smallest input or over the cap."""
        height, width = round(image.shape[0] * factor), round(image.shape[1] * factor)
        if min(height, width) < self.model.min_input_size:
            raise ConfigError(
                f"the {image.shape[1]}x{image.shape[0]} image scaled by {factor:g} is {width}x{height}, "
                f"smaller than the detector's smallest input, {self.model.min_input_size} px a side"
            )
        check_pixel_count(width, height, self.max_pixels, f"the image scaled by {factor:g}")

    def _detect_at(
        self, image: np.ndarray, factor: float, pyramid_scale: float, scales: tuple[float, ...]
    ) -> Decoded:
        """Boxes (in the scaled image's pixels), scores and any landmarks of the image resized by ``factor``
        (the pyramid's ``pyramid_scale`` times the caller's scale); ``scales`` are the pyramid
        scales this image runs at."""
        if factor != 1.0:  # resized in float32, as FaceBoxes.PyTorch's test code does
            image = cv2.resize(
                image.astype(np.float32), None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR
            )
        inputs = torch.from_numpy(self.preprocessing.network_input(image))[None].to(self.device)
        outputs = self.network(inputs)
        size = (image.shape[0], image.shape[1])
        return self.model.decode(outputs, size, scale=pyramid_scale, scales=scales)
