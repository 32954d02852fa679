"""Deformable convolution (Dai et al., "Deformable Convolutional Networks", ICCV 2017, Sec. 2.1).

``y(p0) = sum_n w(pn) * x(p0 + pn + dpn)`` (Eq. 2): each kernel tap ``pn`` of the regular grid is
moved by a learned offset ``dpn``, and ``x`` is read there by bilinear interpolation (Eq. 3-4),
zero outside the image. The offsets come from a plain conv over the same input with the same
kernel, stride, padding and dilation, so there is one offset pair per tap and output pixel.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d

from edgevision.errors import ShapeError


class DeformConv2d(nn.Module):
    """Deformable 2-D convolution (DCNv1: offsets, no modulation mask).

    ``weight (C_out, C_in / groups, kh, kw)`` and ``bias (C_out,)`` are laid out as
    ``nn.Conv2d``'s, so a trained conv's can be copied in (:meth:`from_conv`). ``offset_conv``
    predicts ``2 * deformable_groups * kh * kw`` channels: channel ``2 * (g * kh * kw + k)`` is the
    row offset and the next one the column offset, in input pixels, of tap ``k = i * kw + j`` for
    the input channels of deformable group ``g`` (torchvision's layout, and ONNX ``DeformConv``'s).
    It starts at zero, so a new layer is the plain conv (Sec. 2.3: offset layers are initialised
    with zero weights).

    Shape: ``(B, C_in, H, W) -> (B, C_out, H', W')``, ``H' = floor((H + 2 * padding - dilation *
    (kh - 1) - 1) / stride) + 1`` as ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels} -> {out_channels} must both divide by groups {groups}")
        if in_channels % deformable_groups:
            raise ValueError(
                f"in_channels {in_channels} must divide by deformable_groups {deformable_groups}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        kh, kw = self.kernel_size
        self.offset_conv = nn.Conv2d(
            in_channels,
            2 * deformable_groups * kh * kw,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv2d's initialisation for the kernel; zero offsets (Sec. 2.3).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, deformable_groups: int = 1) -> DeformConv2d:
        """A deformable copy of ``conv``: same kernel, weights and geometry, zero offsets, so it
        computes exactly what ``conv`` did until its offsets are trained."""
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(
                f"only integer zero padding converts, got {conv.padding!r}, {conv.padding_mode!r}"
            )
        layer = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            deformable_groups=deformable_groups,
            bias=conv.bias is not None,
        ).to(device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"expected a (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        offset = self.offset_conv(x)
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"deformable_groups={self.deformable_groups}, bias={self.bias is not None}"
        )
