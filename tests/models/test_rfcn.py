"""Deformable R-FCN (Dai et al., ICCV 2017) on ``resnet50_dcn``: output shapes, its size, equality
at the zero offsets it starts from with plain R-FCN built on torchvision's ``ps_roi_align``, and a
deformable path that is live and trained."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import ps_roi_align

from edgevision.errors import ShapeError
from edgevision.layers.deform_conv import DeformConv2d
from edgevision.models import create_model
from edgevision.models.complexity import count_params
from edgevision.models.rfcn import EXAMPLE_ROIS_PER_IMAGE, RFCNHead

NUM_CLASSES = 81  # COCO + background
K = 7
IMAGE_SIZE = (128, 128)  # (H, W): res5 features of 8 x 8 at stride 16
# (batch_index, x1, y1, x2, y2) in pixels of a 128 x 128 image, two per image of a batch of 2.
ROIS = torch.tensor(
    [
        [0.0, 8.0, 12.0, 90.0, 70.0],
        [0.0, 40.0, 30.0, 127.0, 127.0],
        [1.0, 0.0, 0.0, 60.0, 100.0],
        [1.0, 20.5, 33.3, 50.2, 61.7],
    ]
)


def conv1x1_params(in_channels: int, out_channels: int) -> int:
    return in_channels * out_channels + out_channels


def res5_features(batch: int = 2) -> torch.Tensor:
    """res5 features of a batch of 128 x 128 images: ``(batch, 2048, 8, 8)``, non-negative as after ReLU."""
    return torch.randn(batch, 2048, IMAGE_SIZE[0] // 16, IMAGE_SIZE[1] // 16).relu()


def plain_rfcn(
    head: RFCNHead, features: torch.Tensor, rois: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """R-FCN with plain PS RoI pooling (torchvision's, RoIAlign sampling) on ``head``'s convs."""
    x = torch.relu(head.reduce(features))

    def vote(maps: torch.Tensor) -> torch.Tensor:
        return ps_roi_align(maps, rois, K, spatial_scale=1 / 16, sampling_ratio=4).mean(dim=(2, 3))

    return vote(head.cls_maps(x)), vote(head.box_maps(x))


def test_parameter_count_is_resnet50_dcn_without_fc_plus_the_head() -> None:
    head = (
        conv1x1_params(2048, 1024)  # dimension reduction to 1024
        + conv1x1_params(1024, K * K * NUM_CLASSES)  # position-sensitive score maps
        + conv1x1_params(1024, K * K * 4)  # class-agnostic box maps
        + conv1x1_params(K * K * NUM_CLASSES, 2 * K * K)  # offsets of the score maps' bins
        + conv1x1_params(K * K * 4, 2 * K * K)  # offsets of the box maps' bins
    )
    assert head == 6_775_667
    expected = 25_805_918 - conv1x1_params(2048, 1000) + head
    assert count_params(create_model("rfcn_resnet50_dcn")) == expected == 30_532_585


@pytest.mark.parametrize(("class_agnostic_boxes", "box_width"), [(True, 4), (False, 4 * NUM_CLASSES)])
def test_head_output_shapes(class_agnostic_boxes: bool, box_width: int) -> None:
    head = RFCNHead(num_classes=NUM_CLASSES, class_agnostic_boxes=class_agnostic_boxes)
    with torch.no_grad():
        cls_logits, box_deltas = head(res5_features(), ROIS)
    assert cls_logits.shape == (len(ROIS), NUM_CLASSES)
    assert box_deltas.shape == (len(ROIS), box_width)


def test_model_output_shapes_and_example_inputs() -> None:
    torch.manual_seed(0)
    model = create_model("rfcn_resnet50_dcn").eval()
    assert not any(isinstance(m, nn.Linear) for m in model.modules()), "the ImageNet classifier is gone"
    assert sum(isinstance(m, DeformConv2d) for m in model.backbone.modules()) == 3

    torch.manual_seed(1)
    images, rois = model.example_inputs(2, IMAGE_SIZE)
    torch.manual_seed(1)
    again = model.example_inputs(2, IMAGE_SIZE)
    assert torch.equal(images, again[0]) and torch.equal(rois, again[1])
    assert images.shape == (2, 3, *IMAGE_SIZE)
    assert rois.shape == (2 * EXAMPLE_ROIS_PER_IMAGE, 5)
    assert rois[:, 0].tolist() == [0.0] * EXAMPLE_ROIS_PER_IMAGE + [1.0] * EXAMPLE_ROIS_PER_IMAGE
    assert bool((rois[:, 1:3] >= 0).all() and (rois[:, 3:] > rois[:, 1:3]).all())
    assert bool((rois[:, 3] <= IMAGE_SIZE[1] - 1).all() and (rois[:, 4] <= IMAGE_SIZE[0] - 1).all())

    with torch.no_grad():
        cls_logits, box_deltas = model(images, rois)
    assert cls_logits.shape == (len(rois), NUM_CLASSES)
    assert box_deltas.shape == (len(rois), 4)
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        model(images[0], rois)


def test_head_at_init_is_plain_rfcn_with_torchvision_ps_roi_align() -> None:
    torch.manual_seed(0)
    head = RFCNHead(num_classes=NUM_CLASSES, mode="align")
    x = res5_features()
    with torch.no_grad():
        actual = head(x, ROIS)
        expected = plain_rfcn(head, x, ROIS)
    for got, want in zip(actual, expected, strict=True):
        assert float(want.abs().max()) > 1e-3, "outputs too small for the comparison to mean anything"
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_offsets_move_the_bins() -> None:
    torch.manual_seed(0)
    head = RFCNHead(num_classes=NUM_CLASSES)
    x = res5_features()
    with torch.no_grad():
        cls_before, box_before = head(x, ROIS)
        # Every bin of every RoI moves right and down by gamma = 0.1 of the RoI's size.
        head.cls_pool.offset_conv.bias.fill_(1.0)
        cls_after, box_after = head(x, ROIS)
    assert not torch.allclose(cls_after, cls_before, rtol=0, atol=1e-4)
    assert torch.equal(box_after, box_before), "the box maps have their own offsets"


def test_backward_reaches_every_offset_conv() -> None:
    torch.manual_seed(0)
    model = create_model("rfcn_resnet50_dcn")
    outputs = model(*model.example_inputs(1, IMAGE_SIZE))
    sum(o.square().mean() for o in outputs).backward()
    offset_convs = {
        "head.cls_pool": model.head.cls_pool.offset_conv,
        "head.box_pool": model.head.box_pool.offset_conv,
        **{f"backbone.layer4.{i}": block.conv2.offset_conv for i, block in enumerate(model.backbone.layer4)},
    }
    for name, conv in offset_convs.items():
        assert conv.weight.grad is not None and float(conv.weight.grad.abs().sum()) > 0, name
        assert conv.bias.grad is not None and float(conv.bias.grad.abs().sum()) > 0, name
