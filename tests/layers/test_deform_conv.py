"""DeformConv2d (Dai et al., ICCV 2017): plain conv at zero offsets, the paper's formula (Eq. 2-4)
computed literally in numpy, a hand-derived one-pixel shift, float64 gradcheck, and its ONNX
export to the native ``DeformConv`` run by ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from edgevision.deploy.export import export_onnx
from edgevision.errors import ShapeError
from edgevision.layers.deform_conv import DeformConv2d

CONFIGS = {
    "stride2": dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1),
    "dilation2": dict(in_channels=4, out_channels=6, kernel_size=3, padding=2, dilation=2),
    "groups2_deformable_groups2": dict(
        in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2, deformable_groups=2
    ),
    "kernel3x5": dict(in_channels=3, out_channels=2, kernel_size=(3, 5), padding=(1, 2)),
}


def deform_conv_reference(
    x: np.ndarray,
    offset: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    deformable_groups: int,
) -> np.ndarray:
    """Eq. 2-4 of the paper, literally: ``y(p0) = sum_n w(pn) x(p)``, ``p = p0 + pn + dpn``, with
    ``x(p) = sum_q G(q, p) x(q)`` over every pixel ``q`` of the image (zero outside it),
    ``G(q, p) = g(qy, py) g(qx, px)`` and ``g(a, b) = max(0, 1 - |a - b|)``. The offsets are
    ``(dy, dx)`` pairs per deformable group and tap, the layout DeformConv2d documents."""
    batch, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    out_h, out_w = offset.shape[2:]
    offset = offset.reshape(batch, deformable_groups, kh, kw, 2, out_h, out_w)
    per_offset_group = channels // deformable_groups
    per_group_out = out_channels // groups
    qy, qx = np.arange(height), np.arange(width)
    y = np.zeros((batch, out_channels, out_h, out_w))
    for b in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                sampled = np.zeros((channels, kh, kw))  # x(p0 + pn + dpn) per channel and tap
                for g in range(deformable_groups):
                    chans = slice(g * per_offset_group, (g + 1) * per_offset_group)
                    for i in range(kh):
                        for j in range(kw):
                            dy, dx = offset[b, g, i, j, :, oy, ox]
                            py = oy * stride[0] - padding[0] + i * dilation[0] + dy
                            px = ox * stride[1] - padding[1] + j * dilation[1] + dx
                            gy = np.maximum(0.0, 1.0 - np.abs(qy - py))
                            gx = np.maximum(0.0, 1.0 - np.abs(qx - px))
                            sampled[chans, i, j] = np.einsum("h,chw,w->c", gy, x[b, chans], gx)
                for o in range(out_channels):
                    g = o // per_group_out
                    group_input = sampled[g * group_channels : (g + 1) * group_channels]
                    y[b, o, oy, ox] = bias[o] + np.sum(weight[o] * group_input)
    return y


@pytest.mark.parametrize("name", CONFIGS)
def test_zero_offsets_equal_conv2d(name: str) -> None:
    torch.manual_seed(0)
    layer = DeformConv2d(**CONFIGS[name])
    x = torch.randn(2, layer.in_channels, 11, 14)
    expected = F.conv2d(
        x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups
    )
    assert torch.count_nonzero(layer.offset_conv.weight) == torch.count_nonzero(layer.offset_conv.bias) == 0
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)


def test_from_conv_computes_what_the_conv_did() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)
    layer = DeformConv2d.from_conv(conv, deformable_groups=2)
    assert (layer.stride, layer.padding, layer.dilation, layer.groups) == ((2, 2), (2, 2), (2, 2), 2)
    assert layer.offset_conv.out_channels == 2 * 2 * 3 * 3
    x = torch.randn(1, 4, 9, 10)
    torch.testing.assert_close(layer(x), conv(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        dict(in_channels=3, out_channels=2, kernel_size=3, padding=1),
        dict(
            in_channels=4,
            out_channels=4,
            kernel_size=3,
            stride=2,
            padding=2,
            dilation=2,
            groups=2,
            deformable_groups=2,
        ),
    ],
    ids=["plain", "stride2_dilation2_groups2"],
)
def test_random_offsets_match_the_papers_formula(config: dict) -> None:
    torch.manual_seed(0)
    layer = DeformConv2d(**config).double()
    # Offsets of a few pixels, so some taps sample between pixels and some outside the image.
    nn.init.normal_(layer.offset_conv.weight, std=0.5)
    nn.init.normal_(layer.offset_conv.bias, std=1.0)
    x = torch.randn(2, layer.in_channels, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        offset = layer.offset_conv(x)
        got = layer(x)
    assert offset.abs().max() > 2  # several pixels, on a 5x6 image
    expected = deform_conv_reference(
        x.numpy(),
        offset.numpy(),
        layer.weight.detach().numpy(),
        layer.bias.detach().numpy(),
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
        layer.deformable_groups,
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_offset_of_one_pixel_is_a_shifted_input(axis: str) -> None:
    torch.manual_seed(0)
    layer = DeformConv2d(3, 5, 3).double()
    with torch.no_grad():
        # Channel 2k is the row offset of tap k, channel 2k + 1 the column offset.
        layer.offset_conv.bias[0 if axis == "rows" else 1 :: 2] = 1.0
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    # Every tap reads one pixel further down (right): the plain conv of the input moved up (left)
    # by one pixel, with a zero row (column) coming in at the bottom (right).
    shifted = F.pad(x[:, :, 1:], (0, 0, 0, 1)) if axis == "rows" else F.pad(x[..., 1:], (0, 1))
    expected = F.conv2d(shifted, layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


def test_gradcheck_input_offsets_and_weight() -> None:
    torch.manual_seed(0)
    layer = DeformConv2d(2, 3, 3, padding=1, deformable_groups=2).double()
    names = ["weight", "bias", "offset_conv.weight", "offset_conv.bias"]
    params = {name: torch.randn_like(p) * 0.3 for name, p in layer.named_parameters() if name in names}
    # Fractional offsets: bilinear sampling has kinks at whole pixels.
    params["offset_conv.bias"] = params["offset_conv.bias"] + 0.37
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)

    def run(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(params, values)), (x,))

    inputs = (x, *params.values())
    assert torch.autograd.gradcheck(run, tuple(t.requires_grad_() for t in inputs))


def test_rejects_a_wrong_input_shape() -> None:
    layer = DeformConv2d(4, 6, 3)
    with pytest.raises(ShapeError, match=r"\(B, 4, H, W\)"):
        layer(torch.zeros(4, 8, 8))
    with pytest.raises(ShapeError, match=r"got \(1, 3, 8, 8\)"):
        layer(torch.zeros(1, 3, 8, 8))


def test_rejects_channels_that_do_not_split() -> None:
    with pytest.raises(ValueError, match="groups"):
        DeformConv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="deformable_groups"):
        DeformConv2d(4, 6, 3, deformable_groups=3)
    with pytest.raises(ValueError, match="zero padding"):
        DeformConv2d.from_conv(nn.Conv2d(4, 6, 3, padding="same"))


def deformable_net() -> nn.Module:
    """A small net whose DeformConv2d has non-zero offsets, groups and deformable groups, and
    different row and column geometry (so a swapped argument shows)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        DeformConv2d(8, 6, 3, stride=(2, 1), padding=(2, 1), dilation=(2, 1), groups=2, deformable_groups=2),
    )
    nn.init.normal_(net[2].offset_conv.weight, std=0.2)
    nn.init.normal_(net[2].offset_conv.bias, std=1.0)
    return net.eval()


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_onnx_export_is_a_native_deform_conv_that_onnx_runtime_matches(tmp_path: Path) -> None:
    net = deformable_net()
    path = export_onnx(net, tmp_path / "deformable.onnx", input_size=(20, 24))
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [(entry.domain, entry.version) for entry in proto.opset_import if entry.domain == ""] == [("", 19)]
    (node,) = [node for node in proto.graph.node if node.op_type == "DeformConv"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attributes == {
        "dilations": [2, 1],
        "group": 2,
        "offset_group": 2,
        "pads": [2, 1, 2, 1],
        "strides": [2, 1],
    }
    assert [output.name for output in proto.graph.output] == ["output_0"]
    for size in [(20, 24), (17, 31)]:  # H and W are dynamic
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = net(x)
        assert net[2].offset_conv(net[1](net[0](x))).abs().max() > 1  # really deformed
        np.testing.assert_allclose(run_onnx(path, x), expected.numpy(), rtol=0, atol=1e-4)


def test_onnx_export_refuses_an_opset_without_deform_conv(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset >= 19"):
        export_onnx(deformable_net(), tmp_path / "deformable.onnx", input_size=(20, 24), opset=18)


def test_onnx_export_of_a_modulated_deform_conv_keeps_the_mask(tmp_path: Path) -> None:
    class Modulated(nn.Module):
        """torchvision's deform_conv2d with a mask (DCNv2), which the translation passes on."""

        def __init__(self) -> None:
            super().__init__()
            self.offset = nn.Conv2d(3, 18, 3, padding=1)
            self.mask = nn.Conv2d(3, 9, 3, padding=1)
            self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return deform_conv2d(x, self.offset(x), self.weight, padding=1, mask=self.mask(x).sigmoid())

    torch.manual_seed(0)
    net = Modulated().eval()
    path = export_onnx(net, tmp_path / "modulated.onnx", input_size=(9, 11), opset=19, output_names=["y"])
    (node,) = [node for node in onnx.load(path).graph.node if node.op_type == "DeformConv"]
    assert len(node.input) == 5  # X, W, offset, B, mask
    x = torch.randn(1, 3, 9, 11)
    with torch.no_grad():
        expected = net(x)
    np.testing.assert_allclose(run_onnx(path, x), expected.numpy(), rtol=0, atol=1e-4)
