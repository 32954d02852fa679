"""Deformable (PS) RoI pooling: ``"align"`` against torchvision's RoIAlign kernels, ``"mxnet"``
against a loop-by-loop re-implementation of the reference ``DeformablePSROIPooling`` operator
(msracver/Deformable-ConvNets), offsets on a linear ramp, gradcheck, and the modules."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import ps_roi_align, roi_align

from edgevision.errors import ConfigError, ShapeError
from edgevision.layers.deform_roi_pool import (
    DeformPSRoIPool,
    DeformRoIPool,
    deform_ps_roi_pool,
    deform_roi_pool,
)

POOLS = {"roi": deform_roi_pool, "ps": deform_ps_roi_pool}


def random_rois(
    generator: torch.Generator, num: int, batch: int, image_h: float, image_w: float
) -> torch.Tensor:
    """``(num, 5)`` float64 RoIs whose centres range a quarter of the image beyond its edges."""
    centre = (torch.rand(num, 2, generator=generator, dtype=torch.float64) * 1.5 - 0.25) * torch.tensor(
        [image_w, image_h], dtype=torch.float64
    )
    size = (torch.rand(num, 2, generator=generator, dtype=torch.float64) * 0.7 + 0.1) * torch.tensor(
        [image_w, image_h], dtype=torch.float64
    )
    index = torch.randint(batch, (num, 1), generator=generator).double()
    return torch.cat([index, centre - size / 2, centre + size / 2], dim=1)


def c_round(value: float) -> float:
    """C's ``round``: halves away from zero (Python's ``round`` rounds them to even)."""
    return math.copysign(math.floor(abs(value) + 0.5), value)


def reference_mxnet(
    input: torch.Tensor,
    rois: torch.Tensor,
    offset: torch.Tensor | None,
    output_size: tuple[int, int],
    spatial_scale: float,
    sample_per_part: int,
    trans_std: float,
    position_sensitive: bool,
) -> torch.Tensor:
    """DeformablePSROIPoolForwardKernel, one output element and one sample at a time, in float64."""
    k_h, k_w = output_size
    _, channels, height, width = input.shape
    data = input.double().tolist()
    trans = None if offset is None else offset.double().tolist()
    out_channels = channels // (k_h * k_w) if position_sensitive else channels
    out = torch.zeros(len(rois), out_channels, k_h, k_w, dtype=torch.float64)

    def bilinear(plane: list[list[float]], x: float, y: float) -> float:
        x1, x2, y1, y2 = math.floor(x), math.ceil(x), math.floor(y), math.ceil(y)
        dx, dy = x - x1, y - y1
        return (
            (1 - dx) * (1 - dy) * plane[y1][x1]
            + (1 - dx) * dy * plane[y2][x1]
            + dx * (1 - dy) * plane[y1][x2]
            + dx * dy * plane[y2][x2]
        )

    for n, (index, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        roi_start_w = c_round(x1) * spatial_scale - 0.5
        roi_start_h = c_round(y1) * spatial_scale - 0.5
        roi_end_w = (c_round(x2) + 1.0) * spatial_scale - 0.5
        roi_end_h = (c_round(y2) + 1.0) * spatial_scale - 0.5
        roi_width = max(roi_end_w - roi_start_w, 0.1)
        roi_height = max(roi_end_h - roi_start_h, 0.1)
        bin_size_w, bin_size_h = roi_width / k_w, roi_height / k_h
        sub_bin_size_w, sub_bin_size_h = bin_size_w / sample_per_part, bin_size_h / sample_per_part
        for ctop in range(out_channels):
            for ph in range(k_h):
                for pw in range(k_w):
                    trans_x = 0.0 if trans is None else trans[n][0][ph][pw] * trans_std
                    trans_y = 0.0 if trans is None else trans[n][1][ph][pw] * trans_std
                    wstart = pw * bin_size_w + roi_start_w + trans_x * roi_width
                    hstart = ph * bin_size_h + roi_start_h + trans_y * roi_height
                    c = (ctop * k_h + ph) * k_w + pw if position_sensitive else ctop
                    total, count = 0.0, 0
                    for ih in range(sample_per_part):
                        for iw in range(sample_per_part):
                            w = wstart + iw * sub_bin_size_w
                            h = hstart + ih * sub_bin_size_h
                            if w < -0.5 or w > width - 0.5 or h < -0.5 or h > height - 0.5:
                                continue
                            w = min(max(w, 0.0), width - 1.0)
                            h = min(max(h, 0.0), height - 1.0)
                            total += bilinear(data[int(index)][c], w, h)
                            count += 1
                    out[n, ctop, ph, pw] = 0.0 if count == 0 else total / count
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spatial_scale", [1 / 16, 1.0])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
def test_align_mode_without_offsets_equals_torchvision(
    dtype: torch.dtype, spatial_scale: float, sampling_ratio: int
) -> None:
    generator = torch.Generator().manual_seed(sampling_ratio)
    output_size = (2, 3)  # not square, so a transposed bin layout shows
    input = torch.randn(2, 12, 9, 11, generator=generator, dtype=dtype)
    rois = random_rois(generator, 12, 2, 9 / spatial_scale, 11 / spatial_scale).to(dtype)
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    ours = deform_roi_pool(input, rois, None, output_size, spatial_scale, sampling_ratio, mode="align")
    theirs = roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=atol)
    ours = deform_ps_roi_pool(input, rois, None, output_size, spatial_scale, sampling_ratio, mode="align")
    theirs = ps_roi_align(input, rois, output_size, spatial_scale, sampling_ratio)
    assert ours.shape == (12, 2, 2, 3)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("position_sensitive", [False, True])
@pytest.mark.parametrize("spatial_scale", [0.5, 1.0])
@pytest.mark.parametrize("with_offset", [True, False])
def test_mxnet_mode_equals_reference_loops(
    position_sensitive: bool, spatial_scale: float, with_offset: bool
) -> None:
    generator = torch.Generator().manual_seed(7)
    output_size, sample_per_part = (3, 2), 3
    input = torch.randn(2, 12, 7, 8, generator=generator, dtype=torch.float64)
    rois = torch.cat(
        [
            random_rois(generator, 8, 2, 7 / spatial_scale, 8 / spatial_scale),
            torch.tensor(
                [
                    [0, -2.5, 2.5, 10.5, 6.5],  # C round moves these halves, round-half-even would not
                    [1, 0.0, 0.0, 8 / spatial_scale - 1, 7 / spatial_scale - 1],  # the whole image
                    [0, -40.0, -30.0, -20.0, -25.0],  # wholly outside: every bin 0
                    [1, 9.0, 6.0, 4.0, 3.0],  # x2 < x1: the 0.1 minimum size
                ],
                dtype=torch.float64,
            ),
        ]
    )
    # Up to +-0.3 of the RoI's size: many samples pushed off the map.
    offset = (
        torch.rand(12, 2, *output_size, generator=generator, dtype=torch.float64) * 6 - 3
        if with_offset
        else None
    )
    pool = deform_ps_roi_pool if position_sensitive else deform_roi_pool
    ours = pool(input, rois, offset, output_size, spatial_scale, sample_per_part, 0.1, "mxnet")
    reference = reference_mxnet(
        input, rois, offset, output_size, spatial_scale, sample_per_part, 0.1, position_sensitive
    )
    assert (reference[10] == 0).all() and (reference != 0).any()
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-10)


def ramp(channels: int, height: int, width: int, slope_x: float, slope_y: float) -> torch.Tensor:
    """``f(x, y) = 0.3 + slope_x * x + slope_y * y`` in every channel: ``(1, channels, height, width)``."""
    ys = torch.arange(height, dtype=torch.float64)[:, None]
    xs = torch.arange(width, dtype=torch.float64)[None, :]
    return (0.3 + slope_x * xs + slope_y * ys).expand(1, channels, height, width).contiguous()


# Image-pixel RoIs whose samples stay on a 24 x 32 map at scale 0.5, with or without the offsets.
RAMP_ROIS = torch.tensor([[0, 16.0, 10.0, 40.0, 30.0], [0, 20.0, 12.0, 30.0, 36.0]], dtype=torch.float64)


def ramp_roi_sizes(mode: str, spatial_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Width and height of RAMP_ROIS on the feature map as ``mode`` defines them."""
    extra = 1.0 if mode == "mxnet" else 0.0  # the reference's box spans [x1, x2 + 1) pixels
    width = (RAMP_ROIS[:, 3] - RAMP_ROIS[:, 1] + extra) * spatial_scale
    height = (RAMP_ROIS[:, 4] - RAMP_ROIS[:, 2] + extra) * spatial_scale
    return width, height


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
@pytest.mark.parametrize("mode", ["mxnet", "align"])
def test_constant_offset_shifts_a_linear_ramp(pool, mode: str) -> None:
    slope_x, slope_y, gamma, scale = 0.7, -1.3, 0.1, 0.5
    delta_x, delta_y = 0.6, -0.45
    input = ramp(18, 24, 32, slope_x, slope_y)
    offset = torch.tensor([delta_x, delta_y], dtype=torch.float64).view(1, 2, 1, 1).expand(2, 2, 3, 3)
    plain = pool(input, RAMP_ROIS, None, 3, scale, 2, gamma, mode)
    moved = pool(input, RAMP_ROIS, offset, 3, scale, 2, gamma, mode)
    roi_w, roi_h = ramp_roi_sizes(mode, scale)
    shift = gamma * (delta_x * roi_w * slope_x + delta_y * roi_h * slope_y)
    torch.testing.assert_close(moved - plain, shift.view(2, 1, 1, 1).expand_as(plain), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["mxnet", "align"])
def test_offset_gradient_is_scaled_by_roi_size(mode: str) -> None:
    """On a ramp, d(output) / d(dp^_x) = gamma * roi_w * slope_x per bin (and y likewise)."""
    slope_x, slope_y, gamma, scale = 0.7, -1.3, 0.1, 0.5
    input = ramp(2, 24, 32, slope_x, slope_y)
    offset = torch.full((2, 2, 3, 3), 0.2, dtype=torch.float64, requires_grad=True)
    deform_roi_pool(input, RAMP_ROIS, offset, 3, scale, 2, gamma, mode).sum().backward()
    roi_w, roi_h = ramp_roi_sizes(mode, scale)
    expected_x = (2 * gamma * slope_x * roi_w).view(2, 1, 1).expand(2, 3, 3)
    expected_y = (2 * gamma * slope_y * roi_h).view(2, 1, 1).expand(2, 3, 3)
    torch.testing.assert_close(offset.grad, torch.stack([expected_x, expected_y], dim=1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
@pytest.mark.parametrize("mode", ["mxnet", "align"])
def test_gradcheck_input_and_offsets(pool, mode: str) -> None:
    generator = torch.Generator().manual_seed(3)
    input = torch.randn(2, 8, 5, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    # Non-integer corners and random offsets keep samples off the pixel grid (bilinear kinks), and
    # the last RoI hangs over the border, so clamped and dropped samples are in the check.
    rois = torch.tensor(
        [[0, 1.3, 0.7, 4.6, 3.9], [1, 0.2, 1.1, 7.7, 4.4], [1, -1.6, -0.9, 2.1, 5.8]], dtype=torch.float64
    )
    offset = (torch.rand(3, 2, 2, 2, generator=generator, dtype=torch.float64) * 2 - 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, o: pool(x, rois, o, 2, 1.0, 2, 0.1, mode), (input, offset))
    if mode == "align":  # continuous RoI corners (the reference rounds them: no gradient there)
        corners = rois[:, 1:].clone().requires_grad_()
        index, input, offset = rois[:, :1], input.detach(), offset.detach()
        assert torch.autograd.gradcheck(
            lambda c: pool(input, torch.cat([index, c], 1), offset, 2, 1.0, 2, 0.1, mode), (corners,)
        )


@pytest.mark.parametrize("mode", ["mxnet", "align"])
def test_deform_roi_pool_module(mode: str) -> None:
    generator = torch.Generator().manual_seed(5)
    input = torch.randn(2, 4, 10, 12, generator=generator)
    rois = torch.tensor(
        [[0, 8.0, 8.0, 120.0, 100.0], [1, 40.0, 30.0, 90.0, 150.0], [1, 0.0, 0.0, 180.0, 150.0]]
    )
    module = DeformRoIPool(3, 1 / 16, 2, mode=mode, in_channels=4, fc_channels=16)
    out = module(input, rois)
    assert out.shape == (3, 4, 3, 3)
    torch.testing.assert_close(
        out, deform_roi_pool(input, rois, None, 3, 1 / 16, 2, mode=mode), rtol=0, atol=0
    )
    out.square().sum().backward()
    assert module.offset_fc[-1].weight.grad.abs().sum() > 0  # the zero layer learns
    # Its bias is the normalised offset of every bin, channel 0 along x, 1 along y.
    with torch.no_grad():
        module.offset_fc[-1].bias.copy_(torch.randn(18, generator=generator))
    offset = module.offset_fc[-1].bias.detach().view(1, 2, 3, 3).expand(3, 2, 3, 3)
    expected = deform_roi_pool(input, rois, offset, 3, 1 / 16, 2, mode=mode)
    torch.testing.assert_close(module(input, rois), expected, rtol=0, atol=1e-6)
    assert module(input, rois[:0]).shape == (0, 4, 3, 3)


@pytest.mark.parametrize("mode", ["mxnet", "align"])
def test_deform_ps_roi_pool_module(mode: str) -> None:
    generator = torch.Generator().manual_seed(6)
    input = torch.randn(2, 3 * 2 * 3, 10, 12, generator=generator)
    rois = torch.tensor([[0, 8.0, 8.0, 120.0, 100.0], [1, 40.0, 30.0, 90.0, 150.0]])
    module = DeformPSRoIPool((2, 3), 1 / 16, 2, mode=mode, in_channels=18, out_channels=3)
    out = module(input, rois)
    assert out.shape == (2, 3, 2, 3)
    torch.testing.assert_close(out, deform_ps_roi_pool(input, rois, None, (2, 3), 1 / 16, 2, mode=mode))
    out.square().sum().backward()
    assert module.offset_conv.weight.grad.abs().sum() > 0
    # A constant offset map per channel pools to that constant: bin (i, j) reads channel
    # c * 6 + i * 3 + j of the conv's output, c = 0 for x and 1 for y.
    with torch.no_grad():
        module.offset_conv.bias.copy_(torch.randn(12, generator=generator))
    offset = module.offset_conv.bias.detach().view(1, 2, 2, 3).expand(2, 2, 2, 3)
    expected = deform_ps_roi_pool(input, rois, offset, (2, 3), 1 / 16, 2, mode=mode)
    torch.testing.assert_close(module(input, rois), expected, rtol=0, atol=1e-6)


def test_bad_shapes_and_arguments_raise() -> None:
    input = torch.zeros(2, 8, 6, 6)
    rois = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]])
    module = DeformRoIPool(2, 1.0, 2, in_channels=8, fc_channels=4)
    with pytest.raises(ShapeError, match=r"rois must be \(K, 5\)"):
        module(input, rois[:, 1:])
    with pytest.raises(ShapeError, match=r"input must be \(B, 8, H, W\)"):
        module(input[:, :4], rois)
    with pytest.raises(ShapeError, match=r"offset must be \(K, 2, k_h, k_w\)"):
        deform_roi_pool(input, rois, torch.zeros(1, 2, 3, 3), 2, 1.0, 2)
    with pytest.raises(ShapeError, match=r"C_out \* 3 \* 3"):
        deform_ps_roi_pool(input, rois, None, 3, 1.0, 2)
    with pytest.raises(ConfigError, match="mode"):
        deform_roi_pool(input, rois, None, 2, 1.0, 2, mode="caffe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sampling_ratio"):
        deform_roi_pool(input, rois, None, 2, 1.0, 0)
    with pytest.raises(ConfigError, match="batch indices"):
        deform_roi_pool(input, torch.tensor([[2, 1.0, 1.0, 4.0, 4.0]]), None, 2, 1.0, 2)
    with pytest.raises(ConfigError, match="in_channels"):
        DeformPSRoIPool(2, 1.0, 2, in_channels=8, out_channels=3)
