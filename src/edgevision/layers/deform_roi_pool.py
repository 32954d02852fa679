"""Deformable RoI pooling and deformable position-sensitive RoI pooling (Dai et al., "Deformable
Convolutional Networks", ICCV 2017, Sec. 2.2).

``y(i, j) = sum_{p in bin(i, j)} x(p0 + p + dp_ij) / n_ij`` (Eq. 6): each bin of the ``k_h x k_w``
grid over a RoI moves as a whole by ``dp_ij = gamma * dp^_ij * (w, h)``, a normalised offset
``dp^_ij`` scaled by the RoI's width and height (``gamma = 0.1``), so that what the offset branch
learns does not depend on the RoI's scale. ``x`` is read by bilinear interpolation at
``sampling_ratio x sampling_ratio`` points of the bin and averaged. In the position-sensitive form
(R-FCN), bin ``(i, j)`` of output channel ``c`` reads input channel ``c * k_h * k_w + i * k_w + j``,
the layout of ``torchvision.ops.ps_roi_align``.

Two sampling conventions (``mode``):

- ``"mxnet"``: the reference operator (``DeformablePSROIPooling`` of msracver/Deformable-ConvNets).
  RoI corners are rounded to whole pixels (C ``round``: halves away from zero); the RoI starts at
  ``round(x1) * s - 0.5`` and ends at ``(round(x2) + 1) * s - 0.5`` on the feature map (``s`` the
  spatial scale), and is at least 0.1 wide and high. A bin's samples sit at
  ``bin_start + i * bin / sampling_ratio``, from its top-left corner. Samples more than half a
  pixel outside the map are left out of the mean, the others are clamped onto it; a bin with no
  sample left is 0.
- ``"align"``: RoIAlign with ``aligned=True``, as torchvision's ``roi_align`` kernel (and mmcv's
  ``deform_roi_pool``). Continuous corners ``x * s - 0.5``, no minimum size, samples at the
  centres of the ``sampling_ratio x sampling_ratio`` sub-bins. Samples more than one pixel outside
  the map read 0 but are counted; those within one pixel are clamped onto it. With no offsets this
  is ``torchvision.ops.roi_align(..., aligned=True)``, and ``torchvision.ops.ps_roi_align`` for the
  position-sensitive form: ``ps_roi_align`` has no ``aligned`` flag and always shifts by -0.5.

The ops are plain tensor code (one gather of every sample's four neighbours), differentiable by
autograd in the input, the offsets and, in ``"align"`` mode, the RoI corners. Only a fixed
``sampling_ratio >= 1`` is supported: torchvision's adaptive ``sampling_ratio=0`` would give every
RoI its own number of samples.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from edgevision.errors import ConfigError, ShapeError

Mode = Literal["mxnet", "align"]
MODES: tuple[str, ...] = ("mxnet", "align")


def deform_roi_pool(
    input: torch.Tensor,
    rois: torch.Tensor,
    offset: torch.Tensor | None,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    gamma: float = 0.1,
    mode: Mode = "mxnet",
) -> torch.Tensor:
    """Deformable RoI pooling (Sec. 2.2, Eq. 6): average of each (moved) bin, every channel.

    Args:
        input: feature map.
        rois: ``(batch_index, x1, y1, x2, y2)`` in image pixels, as torchvision's RoI ops.
        offset: normalised bin offsets ``dp^``, channel 0 along x and 1 along y (the reference's
            ``trans``); ``None`` is plain RoI pooling.
        output_size: ``k`` or ``(k_h, k_w)`` bins.
        spatial_scale: feature-map pixels per image pixel (1/16 at stride 16).
        sampling_ratio: samples per bin along each axis (the reference's ``sample_per_part``).
        gamma: offset scale, ``dp = gamma * dp^ * (roi_w, roi_h)`` (the reference's ``trans_std``).
        mode: ``"mxnet"`` or ``"align"``, see the module docstring.

    Shape: input ``(B, C, H, W)``, rois ``(K, 5)``, offset ``(K, 2, k_h, k_w)`` ->
    ``(K, C, k_h, k_w)``.
    """
    if _exporting_plugin("deform_roi_pool"):
        op = torch.ops.edgevision.deform_roi_pool
        return op(input, rois, offset, list(_pair(output_size)), spatial_scale, sampling_ratio, gamma, mode)
    return _deform_pool(
        input, rois, offset, _pair(output_size), spatial_scale, sampling_ratio, gamma, mode, False
    )


def deform_ps_roi_pool(
    input: torch.Tensor,
    rois: torch.Tensor,
    offset: torch.Tensor | None,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    gamma: float = 0.1,
    mode: Mode = "mxnet",
) -> torch.Tensor:
    """Deformable position-sensitive RoI pooling (Sec. 2.2, R-FCN): bin ``(i, j)`` of output
    channel ``c`` averages input channel ``c * k_h * k_w + i * k_w + j`` over the moved bin.

    Args are those of :func:`deform_roi_pool`; ``C`` must be a multiple of ``k_h * k_w``.

    Shape: input ``(B, C, H, W)``, rois ``(K, 5)``, offset ``(K, 2, k_h, k_w)`` ->
    ``(K, C / (k_h * k_w), k_h, k_w)``.
    """
    if _exporting_plugin("deform_ps_roi_pool"):
        op = torch.ops.edgevision.deform_ps_roi_pool
        return op(input, rois, offset, list(_pair(output_size)), spatial_scale, sampling_ratio, gamma, mode)
    return _deform_pool(
        input, rois, offset, _pair(output_size), spatial_scale, sampling_ratio, gamma, mode, True
    )


def _exporting_plugin(name: str) -> bool:
    """Whether ``torch.export`` is tracing and the engine's plugin op ``edgevision::name`` exists:
    ONNX has no deformable RoI pooling, so an export records the plugin op (one node, which
    :mod:`edgevision.deploy.plugins` runs) instead of the ops of :func:`_deform_pool`. Importing
    :mod:`edgevision.deploy.export` defines the plugin ops."""
    return torch.compiler.is_exporting() and hasattr(torch.ops.edgevision, name)


class DeformRoIPool(nn.Module):
    """Deformable RoI pooling with its offset branch (Sec. 2.2, Fig. 3).

    Plain RoI pooling of the input feeds fully connected layers (``fc_channels`` wide, ReLU, as
    mmcv's ``DeformRoIPoolPack``; the reference FPN heads use a single fc) that predict the
    normalised offsets ``dp^`` of every bin; the input is pooled again with them. The last fc
    starts at zero (Sec. 2.3), so a new layer is plain RoI pooling.

    Shape: input ``(B, in_channels, H, W)``, rois ``(K, 5)`` -> ``(K, in_channels, k_h, k_w)``.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        gamma: float = 0.1,
        mode: Mode = "mxnet",
        *,
        in_channels: int,
        fc_channels: int = 1024,
    ) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.gamma = gamma
        self.mode = mode
        self.in_channels = in_channels
        k_h, k_w = self.output_size
        self.offset_fc = nn.Sequential(
            nn.Linear(in_channels * k_h * k_w, fc_channels),
            nn.ReLU(inplace=True),
            nn.Linear(fc_channels, fc_channels),
            nn.ReLU(inplace=True),
            nn.Linear(fc_channels, 2 * k_h * k_w),
        )
        nn.init.zeros_(self.offset_fc[-1].weight)
        nn.init.zeros_(self.offset_fc[-1].bias)

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        _check_channels(input, self.in_channels)
        args = (self.output_size, self.spatial_scale, self.sampling_ratio, self.gamma, self.mode)
        pooled = deform_roi_pool(input, rois, None, *args)
        offset = self.offset_fc(pooled.flatten(1)).view(-1, 2, *self.output_size)
        return deform_roi_pool(input, rois, offset, *args)


class DeformPSRoIPool(nn.Module):
    """Deformable position-sensitive RoI pooling with its offset branch (Sec. 2.2, Fig. 4).

    A 1x1 conv over the input score maps gives ``2 * k_h * k_w`` offset maps (channel
    ``c * k_h * k_w + i * k_w + j`` holds the x (``c = 0``) or y (``c = 1``) offset of bin
    ``(i, j)``); position-sensitive pooling of them, with no offsets, gives each RoI's normalised
    offsets ``dp^`` ``(K, 2, k_h, k_w)``, shared by all output channels (class-agnostic), with
    which the score maps are pooled. The conv starts at zero (Sec. 2.3).

    Shape: input ``(B, out_channels * k_h * k_w, H, W)``, rois ``(K, 5)`` ->
    ``(K, out_channels, k_h, k_w)``.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        gamma: float = 0.1,
        mode: Mode = "mxnet",
        *,
        in_channels: int,
        out_channels: int,
    ) -> None:
        super().__init__()
        self.output_size = _pair(output_size)
        k_h, k_w = self.output_size
        if in_channels != out_channels * k_h * k_w:
            raise ConfigError(
                f"in_channels {in_channels} must be out_channels {out_channels} * {k_h} * {k_w} score maps"
            )
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.gamma = gamma
        self.mode = mode
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.offset_conv = nn.Conv2d(in_channels, 2 * k_h * k_w, 1)
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        _check_channels(input, self.in_channels)
        args = (self.output_size, self.spatial_scale, self.sampling_ratio, self.gamma, self.mode)
        offset = deform_ps_roi_pool(self.offset_conv(input), rois, None, *args)
        return deform_ps_roi_pool(input, rois, offset, *args)


def _check_channels(input: torch.Tensor, channels: int) -> None:
    if input.dim() != 4 or input.shape[1] != channels:
        raise ShapeError(f"input must be (B, {channels}, H, W), got {tuple(input.shape)}")


def _deform_pool(
    input: torch.Tensor,
    rois: torch.Tensor,
    offset: torch.Tensor | None,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    gamma: float,
    mode: str,
    position_sensitive: bool,
) -> torch.Tensor:
    k_h, k_w = output_size
    if input.dim() != 4:
        raise ShapeError(f"input must be (B, C, H, W), got {tuple(input.shape)}")
    batch, channels, height, width = input.shape
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ShapeError(f"rois must be (K, 5) batch_index x1 y1 x2 y2, got {tuple(rois.shape)}")
    num_rois = rois.shape[0]
    if offset is not None and offset.shape != (num_rois, 2, k_h, k_w):
        raise ShapeError(
            f"offset must be (K, 2, k_h, k_w) = {(num_rois, 2, k_h, k_w)}, got {tuple(offset.shape)}"
        )
    if position_sensitive and channels % (k_h * k_w):
        raise ShapeError(f"input must be (B, C_out * {k_h} * {k_w}, H, W), got {tuple(input.shape)}")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if sampling_ratio < 1:
        raise ConfigError(f"sampling_ratio must be >= 1, got {sampling_ratio}")
    rois = rois.to(input.dtype)
    batch_index = rois[:, 0].long()
    if num_rois and not bool(((batch_index >= 0) & (batch_index < batch)).all()):
        raise ConfigError(f"rois batch indices must lie in [0, {batch}), got {rois[:, 0].tolist()}")

    x_start, roi_w = _roi_extent(rois[:, 1], rois[:, 3], spatial_scale, mode)
    y_start, roi_h = _roi_extent(rois[:, 2], rois[:, 4], spatial_scale, mode)
    # Top-left corner of every bin, moved by dp = gamma * dp^ * (roi_w, roi_h): (K, k_h | 1, k_w | 1).
    bin_w, bin_h = roi_w / k_w, roi_h / k_h
    cols = torch.arange(k_w, dtype=input.dtype, device=input.device)
    rows = torch.arange(k_h, dtype=input.dtype, device=input.device)
    bin_x = (x_start[:, None] + cols * bin_w[:, None])[:, None, :]
    bin_y = (y_start[:, None] + rows * bin_h[:, None])[:, :, None]
    if offset is not None:
        bin_x = bin_x + gamma * offset[:, 0] * roi_w[:, None, None]
        bin_y = bin_y + gamma * offset[:, 1] * roi_h[:, None, None]
    # Sample positions within a bin, from its top-left corner: (K, s).
    phase = 0.5 if mode == "align" else 0.0
    steps = torch.arange(sampling_ratio, dtype=input.dtype, device=input.device) + phase
    x = bin_x[..., None, None] + (steps * bin_w[:, None] / sampling_ratio)[:, None, None, None, :]
    y = bin_y[..., None, None] + (steps * bin_h[:, None] / sampling_ratio)[:, None, None, :, None]

    # The reference skips samples beyond half a pixel out; roi_align zeroes those beyond one pixel.
    margin = 0.5 if mode == "mxnet" else 1.0
    inside = (x >= -margin) & (x <= width - 1 + margin) & (y >= -margin) & (y <= height - 1 + margin)
    x_low, x_high, lx = _bilinear_neighbours(x, width)
    y_low, y_high, ly = _bilinear_neighbours(y, height)
    hx, hy = 1 - lx, 1 - ly
    mask = inside.to(input.dtype)
    weights = torch.stack([hy * hx * mask, hy * lx * mask, ly * hx * mask, ly * lx * mask], dim=-1)

    # Gather the four neighbours of every sample from a (pixels, channels) table of the input.
    if position_sensitive:
        table = input.reshape(batch, channels // (k_h * k_w), k_h, k_w, height, width)
        table = table.permute(0, 2, 3, 4, 5, 1).reshape(-1, channels // (k_h * k_w))
        bins = torch.arange(k_h * k_w, device=input.device).view(1, k_h, k_w)
        base = (batch_index[:, None, None] * (k_h * k_w) + bins) * (height * width)
    else:
        table = input.permute(0, 2, 3, 1).reshape(-1, channels)
        base = (batch_index * (height * width)).view(-1, 1, 1)
    base = base[..., None, None]
    index = torch.stack(
        [
            base + y_low * width + x_low,
            base + y_low * width + x_high,
            base + y_high * width + x_low,
            base + y_high * width + x_high,
        ],
        dim=-1,
    )
    taps = 4 * sampling_ratio * sampling_ratio
    values = table.index_select(0, index.reshape(-1)).view(num_rois, k_h, k_w, taps, table.shape[1])
    total = (weights.reshape(num_rois, k_h, k_w, 1, taps) @ values).squeeze(-2)

    # The reference averages over the samples it kept (0 if none); roi_align over all of them.
    if mode == "mxnet":
        count = inside.sum(dim=(-2, -1)).clamp(min=1).to(input.dtype)[..., None]
    else:
        count = sampling_ratio * sampling_ratio
    return (total / count).permute(0, 3, 1, 2)


def _roi_extent(
    low: torch.Tensor, high: torch.Tensor, spatial_scale: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and size of the RoIs along one axis, in feature-map pixels: ``(K,), (K,)``."""
    if mode == "align":
        start = low * spatial_scale - 0.5
        return start, (high * spatial_scale - 0.5) - start
    # C round (halves away from zero), as the reference; torch.round rounds halves to even.
    low, high = _round_half_away(low), _round_half_away(high)
    start = low * spatial_scale - 0.5
    return start, ((high + 1) * spatial_scale - 0.5 - start).clamp(min=0.1)


def _round_half_away(value: torch.Tensor) -> torch.Tensor:
    return torch.sign(value) * torch.floor(value.abs() + 0.5)


def _bilinear_neighbours(coord: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clamp sample coordinates onto ``[0, size - 1]``: low and high neighbour indices, and the
    weight of the high one (differentiable in ``coord``)."""
    coord = coord.clamp(0, size - 1)
    low = coord.detach().floor()
    frac = coord - low
    low = low.long()
    return low, (low + 1).clamp(max=size - 1), frac
