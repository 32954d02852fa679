"""ArcFace, CosFace and softmax heads against hand-computed logits, a per-element pure-Python
reference, float64 gradcheck, and their refusals."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgevision.errors import ConfigError, ShapeError
from edgevision.recognition.arcface import (
    ArcFaceHead,
    CosFaceHead,
    SoftmaxHead,
    arcface_logits,
    margin_head,
    normalised_cosines,
)

S, M = 64.0, 0.5


def cos_deg(degrees: float, plus_radians: float = 0.0) -> float:
    return math.cos(math.radians(degrees) + plus_radians)


def head_at_angles(head_type: type, degrees: list[float], **options: float) -> tuple[nn.Module, torch.Tensor]:
    """A float64 head whose class ``j`` lies at ``degrees[j]`` from the embedding returned with it
    (all in one plane); the vectors have norms far from 1, so an unnormalised head fails."""
    head = head_type(3, len(degrees), **options).double()
    with torch.no_grad():
        for j, angle in enumerate(degrees):
            head.weight[j] = (2.0 + j) * torch.tensor(
                [cos_deg(angle), cos_deg(90.0 - angle), 0.0], dtype=torch.float64
            )
    return head, torch.tensor([[3.7, 0.0, 0.0]], dtype=torch.float64)


def test_arcface_logits_at_known_angles() -> None:
    head, x = head_at_angles(ArcFaceHead, [60.0, 100.0, 30.0])
    logits = head(x, torch.tensor([0]))[0]
    expected = S * torch.tensor([cos_deg(60, M), cos_deg(100), cos_deg(30)], dtype=torch.float64)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-9)
    # The margin goes to the labelled class only: label 2 moves only the third logit.
    logits = head(x, torch.tensor([2]))[0]
    expected = S * torch.tensor([cos_deg(60), cos_deg(100), cos_deg(30, M)], dtype=torch.float64)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-9)


def test_arcface_fallback_where_theta_plus_m_passes_pi() -> None:
    # theta = 170 deg: theta + m = 3.47 rad > pi. The reference's value is cos(theta) - m sin(m)
    # (-78.37); s cos(theta + m) would be -60.64, s cos(theta) alone -63.03.
    head, x = head_at_angles(ArcFaceHead, [170.0, 20.0])
    target = head(x, torch.tensor([0]))[0, 0].item()
    assert target == pytest.approx(S * (math.cos(math.radians(170)) - M * math.sin(M)), abs=1e-9)
    assert target == pytest.approx(-78.3693, abs=1e-4)


@pytest.mark.parametrize("offset, fallback", [(-0.01, False), (0.01, True)])
def test_arcface_switches_branch_at_pi_minus_m(offset: float, fallback: bool) -> None:
    theta = math.pi - M + offset
    head, x = head_at_angles(ArcFaceHead, [math.degrees(theta)])
    value = head(x, torch.tensor([0]))[0, 0].item()
    expected = math.cos(theta) - M * math.sin(M) if fallback else math.cos(theta + M)
    assert value == pytest.approx(S * expected, abs=1e-9)


def test_arcface_matches_a_per_element_reference_on_random_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=generator, dtype=torch.float64)
    w = torch.randn(5, 8, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 5, (64,), generator=generator)
    x[:16] = -w[labels[:16]] + 0.1 * x[:16]  # a quarter near the opposite direction: the fallback
    logits = arcface_logits(normalised_cosines(x, w), labels, s=S, m=M)
    fallbacks = 0
    for b in range(64):
        for j in range(5):
            cos = float(x[b] @ w[j] / (x[b].norm() * w[j].norm()))
            if j == labels[b]:
                fallbacks += cos <= math.cos(math.pi - M)
                cos = math.cos(math.acos(cos) + M) if cos > math.cos(math.pi - M) else cos - M * math.sin(M)
            assert logits[b, j].item() == pytest.approx(S * cos, abs=1e-9)
    assert fallbacks >= 8


def test_arcface_gradcheck_float64_through_both_branches() -> None:
    generator = torch.Generator().manual_seed(1)
    w = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    x = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    x[:2] = -w[labels[:2]] + 0.1 * x[:2]  # in the fallback region
    cos = normalised_cosines(x, w)[torch.arange(6), labels]
    assert (cos[:2] < math.cos(math.pi - M)).all() and (cos[2:] > math.cos(math.pi - M) + 0.05).all()
    head = ArcFaceHead(5, 4).double()

    def logits(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(head, {"weight": weight}, (embeddings, labels))

    assert torch.autograd.gradcheck(logits, (x.requires_grad_(), w.requires_grad_()))


def test_arcface_gradient_stays_finite_at_cosine_plus_minus_one() -> None:
    head = ArcFaceHead(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], requires_grad=True)  # cos exactly +1 and -1
    loss = torch.nn.functional.cross_entropy(head(x, torch.tensor([0, 0])), torch.tensor([0, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


def test_cosface_logits_at_known_angles() -> None:
    head, x = head_at_angles(CosFaceHead, [60.0, 100.0])
    logits = head(x, torch.tensor([0]))[0]
    # s (cos 60 deg - 0.35) = 64 * 0.15 = 9.6
    torch.testing.assert_close(
        logits, torch.tensor([9.6, S * math.cos(math.radians(100))], dtype=torch.float64), rtol=0, atol=1e-9
    )
    logits = head_at_angles(CosFaceHead, [60.0, 100.0], s=30.0, m=0.2)[0](x, torch.tensor([1]))[0]
    torch.testing.assert_close(logits, 30.0 * torch.tensor([0.5, math.cos(math.radians(100)) - 0.2]).double())


def test_no_labels_means_no_margin() -> None:
    for head_type in (ArcFaceHead, CosFaceHead):
        head, x = head_at_angles(head_type, [60.0, 100.0])
        expected = S * torch.tensor([[0.5, math.cos(math.radians(100))]], dtype=torch.float64)
        torch.testing.assert_close(head(x, None), expected, rtol=0, atol=1e-9)


def test_softmax_head_is_a_plain_linear_layer() -> None:
    head = SoftmaxHead(6, 4)
    linear = torch.nn.Linear(6, 4)
    linear.load_state_dict({"weight": head.linear.weight, "bias": head.linear.bias})
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(head(x, torch.tensor([0, 1, 2, 3, 0])), linear(x), rtol=0, atol=0)
    torch.testing.assert_close(head(x, torch.tensor([3, 3, 3, 3, 3])), linear(x), rtol=0, atol=0)


def test_margin_head_builds_each_head_with_its_options() -> None:
    arc = margin_head("arcface", 128, 30, m=0.4)
    assert isinstance(arc, ArcFaceHead) and (arc.s, arc.m) == (64.0, 0.4) and arc.weight.shape == (30, 128)
    cos = margin_head("cosface", 16, 3)
    assert isinstance(cos, CosFaceHead) and (cos.s, cos.m) == (64.0, 0.35)
    assert isinstance(margin_head("softmax", 16, 3), SoftmaxHead)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("sphereface", {}, "unknown margin head 'sphereface'; choose one of arcface, cosface, softmax"),
        ("softmax", {"s": 64.0}, "the softmax head takes no options, got s"),
        ("arcface", {"margin": 0.5}, "the arcface head takes only m, s, got margin"),
        ("arcface", {"s": float("nan")}, "s must be a finite number in (0, inf), got nan"),
        ("arcface", {"s": float("inf")}, "s must be a finite number in (0, inf), got inf"),
        ("cosface", {"s": 0.0}, "s must be a finite number in (0, inf), got 0.0"),
        ("arcface", {"m": -0.1}, "m must be a finite number in [0, 1.5708], got -0.1"),
        ("arcface", {"m": 2.0}, "m must be a finite number in [0, 1.5708], got 2.0"),
        ("cosface", {"m": float("nan")}, "m must be a finite number in [0, 1], got nan"),
    ],
)
def test_margin_head_refuses_bad_names_and_options(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        margin_head(name, 8, 3, **options)
    assert str(caught.value) == message


@pytest.mark.parametrize("in_features, num_classes", [(0, 3), (8, 0), (8.0, 3), (True, 3)])
def test_heads_refuse_bad_sizes(in_features: int, num_classes: int) -> None:
    with pytest.raises(ConfigError, match="must be a positive whole number"):
        margin_head("arcface", in_features, num_classes)


@pytest.mark.parametrize("name", ["arcface", "cosface", "softmax"])
@pytest.mark.parametrize(
    "labels, error, message",
    [
        (torch.tensor([0, 3]), ConfigError, r"labels must be in \[0, 3\), got values in \[0, 3\]"),
        (torch.tensor([-1, 2]), ConfigError, r"labels must be in \[0, 3\), got values in \[-1, 2\]"),
        (torch.tensor([0.0, 1.0]), ConfigError, "labels must be integer class indices, got torch.float32"),
        (torch.tensor([0, 1, 2]), ShapeError, r"labels must be \(2,\) to match the embeddings, got \(3,\)"),
    ],
)
def test_heads_refuse_bad_labels(name: str, labels: torch.Tensor, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{message}$"):
        margin_head(name, 8, 3)(torch.randn(2, 8), labels)


def test_heads_refuse_embeddings_of_the_wrong_size() -> None:
    with pytest.raises(ShapeError, match=r"^embeddings must be \(B, 8\), got \(2, 7\)$"):
        margin_head("arcface", 8, 3)(torch.randn(2, 7), torch.tensor([0, 1]))
