"""ResNet with deformable res5 (Dai et al., ICCV 2017): its size, its stride-16 features, and, at
the zero offsets it starts from, equality with torchvision's dilated ResNet on the same weights."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from edgevision.layers.deform_conv import DeformConv2d
from edgevision.models import create_model
from edgevision.models.complexity import count_params

# One offset conv per res5 block: 3x3 over res5's 512-channel bottleneck, 2 * 3 * 3 = 18 outputs
# (one (dy, dx) per tap), with a bias.
OFFSET_CONV_PARAMS = 512 * 18 * 3 * 3 + 18  # 82,962
RES5_BLOCKS = 3


@pytest.mark.parametrize(("depth", "torchvision_params"), [(50, 25_557_032), (101, 44_549_160)])
def test_parameter_count_is_torchvisions_plus_three_offset_convs(depth: int, torchvision_params: int) -> None:
    # torchvision's published sizes (weights metadata "num_params") for ResNet-50 / -101.
    assert count_params(getattr(torchvision.models, f"resnet{depth}")()) == torchvision_params
    model = create_model("resnet50_dcn", depth=depth)
    expected = torchvision_params + RES5_BLOCKS * OFFSET_CONV_PARAMS
    assert count_params(model) == expected == {50: 25_805_918, 101: 44_798_046}[depth]


def test_res5a_to_c_are_deformable_and_dilated() -> None:
    model = create_model("resnet50_dcn")
    deformable = {name: m for name, m in model.named_modules() if isinstance(m, DeformConv2d)}
    assert list(deformable) == ["layer4.0.conv2", "layer4.1.conv2", "layer4.2.conv2"]
    assert {(m.stride, m.dilation, m.padding) for m in deformable.values()} == {((1, 1), (2, 2), (2, 2))}


@pytest.mark.parametrize(
    ("overrides", "stride"), [({}, 16), ({"dilate_res5": False, "deformable_stages": ()}, 32)]
)
def test_features_at_stride_16_with_a_dilated_res5(overrides: dict, stride: int) -> None:
    model = create_model("resnet50_dcn", **overrides).eval()
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, 96, 128))
        logits = model(torch.zeros(1, 3, 96, 128))
    assert features.shape == (1, 2048, 96 // stride, 128 // stride)
    assert logits.shape == (1, 1000)


def dilated_torchvision_resnet50() -> torchvision.models.ResNet:
    """torchvision's ResNet-50 with res5 at stride 1 and every 3x3 conv there dilated by 2 (the
    paper's setting: torchvision leaves res5a's conv at dilation 1), with random BN statistics so
    that eval-mode BN is not the identity."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(replace_stride_with_dilation=[False, False, True])
    assert net.layer4[0].conv2.dilation == (1, 1)
    net.layer4[0].conv2.dilation = net.layer4[0].conv2.padding = (2, 2)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, std=0.1)
            nn.init.normal_(m.running_mean, std=0.1)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
    return net.eval()


def test_zero_offsets_equal_torchvisions_dilated_resnet50() -> None:
    # In float64: untrained, the features reach ~3e3, where float32 rounding alone is ~1e-3.
    reference = dilated_torchvision_resnet50().double()
    model = create_model("resnet50_dcn").eval()
    missing, unexpected = model.load_state_dict(reference.state_dict(), strict=False)
    assert unexpected == []
    assert missing == [f"layer4.{i}.conv2.offset_conv.{p}" for i in range(3) for p in ("weight", "bias")]
    model.double()
    x = torch.randn(2, 3, 96, 112, dtype=torch.float64)
    body = nn.Sequential(*list(reference.children())[:-2])
    with torch.no_grad():
        features, expected_features = model.forward_features(x), body(x)
        logits, expected_logits = model(x), reference(x)
    assert features.shape == (2, 2048, 6, 7)
    torch.testing.assert_close(features, expected_features, rtol=0, atol=1e-8)
    torch.testing.assert_close(logits, expected_logits, rtol=0, atol=1e-8)
    # The deformable convs are in the path: offsets of a pixel change the features.
    with torch.no_grad():
        model.layer4[1].conv2.offset_conv.bias.fill_(1.0)
        assert (model.forward_features(x) - expected_features).abs().max() > 1.0
