"""MultiBoxLoss, DistillationLoss and the soft-target distillation against hand / numpy
computations."""

from __future__ import annotations

import numpy as np
import torch

from edgevision.detection.coder import SSDBoxCoder
from edgevision.detection.losses import (
    DistillationLoss,
    MultiBoxLoss,
    MultiBoxTargets,
    SoftTargetDistillation,
    SoftTargets,
    build_soft_targets,
    build_targets,
)
from edgevision.detection.matcher import AnchorMatcher


def smooth_l1(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, 0.5 * x * x, x - 0.5)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def reference_multibox(
    loc: np.ndarray, conf: np.ndarray, labels: np.ndarray, offsets: np.ndarray, ratio: int = 7
) -> tuple[float, float]:
    """FaceBoxes.PyTorch's MultiBoxLoss (layers/modules/multibox_loss.py) in float64 numpy:
    per image, the ``min(ratio * pos, A - 1)`` negatives of highest background loss."""
    logp = log_softmax(conf.astype(np.float64))
    loss_loc = loss_conf = 0.0
    total_pos = 0
    for b in range(loc.shape[0]):
        pos = labels[b] > 0
        total_pos += int(pos.sum())
        loss_loc += smooth_l1(loc[b][pos].astype(np.float64) - offsets[b][pos]).sum()
        background = np.where(pos, 0.0, -logp[b, :, 0])
        num_neg = min(ratio * int(pos.sum()), labels.shape[1] - 1)
        negatives = np.zeros_like(pos)
        negatives[np.argsort(-background, kind="stable")[:num_neg]] = True
        selected = pos | negatives
        loss_conf += -logp[b][selected, labels[b][selected]].sum()
    n = max(total_pos, 1)
    return 2.0 * loss_loc / n, loss_conf / n


def test_one_positive_keeps_seven_hardest_negatives_by_hand() -> None:
    # 10 anchors, anchor 3 is the face. Background logit 0, face logit z: the background loss of a
    # negative is log(1 + e^z), increasing in z, so the 7 hardest negatives are those of largest z.
    z = torch.tensor([0.5, -1.0, 2.0, 0.3, -3.0, 1.5, 0.0, -0.5, 1.0, -2.0])
    conf = torch.stack([torch.zeros(10), z], dim=1)[None]
    labels = torch.zeros(1, 10, dtype=torch.long)
    labels[0, 3] = 1
    offsets = torch.zeros(1, 10, 4)
    offsets[0, 3] = torch.tensor([0.5, -0.2, 1.0, -2.0])
    loc = torch.zeros(1, 10, 4)
    loc[0, 3] = torch.tensor([0.0, 0.0, 3.0, -2.5])
    loc[0, 0] = torch.tensor([9.0, 9.0, 9.0, 9.0])  # a background anchor's box is never penalised

    losses = MultiBoxLoss()(loc, conf, MultiBoxTargets(labels, offsets))

    # Negatives by z: 2.0 (2), 1.5 (5), 1.0 (8), 0.5 (0), 0.0 (6), -0.5 (7), -1.0 (1) are kept;
    # -2.0 (9) and -3.0 (4) are not.
    negatives = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0]
    conf_by_hand = sum(np.log1p(np.exp(v)) for v in negatives) + np.log1p(np.exp(-0.3))
    # Smooth L1 of (-0.5, 0.2, 2.0, -0.5): 0.125 + 0.02 + 1.5 + 0.125 = 1.77, times loc_weight 2.
    torch.testing.assert_close(losses["loc"], torch.tensor(3.54))
    torch.testing.assert_close(losses["conf"], torch.tensor(conf_by_hand, dtype=torch.float32))
    assert abs(losses["conf"].item() - 8.150521) < 1e-5


def test_random_batch_matches_reference_mining() -> None:
    generator = torch.Generator().manual_seed(0)
    batch, anchors = 3, 60
    loc = torch.randn(batch, anchors, 4, generator=generator)
    conf = torch.randn(batch, anchors, 2, generator=generator) * 2
    labels = torch.zeros(batch, anchors, dtype=torch.long)
    labels[0, [4, 17]] = 1  # 2 positives -> 14 negatives
    labels[1, 5:14] = 1  # 9 positives -> 63 clamped to 59: every negative
    # image 2: no face -> no negative mined either
    offsets = torch.randn(batch, anchors, 4, generator=generator) * (labels[..., None] > 0)
    losses = MultiBoxLoss()(loc, conf, MultiBoxTargets(labels, offsets))
    ref_loc, ref_conf = reference_multibox(loc.numpy(), conf.numpy(), labels.numpy(), offsets.numpy())
    assert abs(losses["loc"].item() - ref_loc) < 1e-4 * max(1.0, ref_loc)
    assert abs(losses["conf"].item() - ref_conf) < 1e-4 * max(1.0, ref_conf)


def test_no_positive_gives_zero_loss() -> None:
    conf = torch.randn(2, 8, 2, generator=torch.Generator().manual_seed(3))
    targets = MultiBoxTargets(torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 8, 4))
    losses = MultiBoxLoss()(torch.randn(2, 8, 4), conf, targets)
    assert losses["loc"].item() == 0.0 and losses["conf"].item() == 0.0


def test_gradient_flows_only_to_selected_anchors() -> None:
    conf = torch.tensor([[[0.0, 3.0], [0.0, -3.0], [0.0, 1.0]]], requires_grad=True)
    loc = torch.zeros(1, 3, 4, requires_grad=True)
    labels = torch.tensor([[0, 0, 1]])
    losses = MultiBoxLoss(negatives_per_positive=1)(loc, conf, MultiBoxTargets(labels, torch.ones(1, 3, 4)))
    sum(losses.values()).backward()
    assert conf.grad[0, 0].abs().sum() > 0  # the hardest negative
    assert conf.grad[0, 1].abs().sum() == 0  # the easy negative is not mined
    assert loc.grad[0, :2].abs().sum() == 0 and loc.grad[0, 2].abs().sum() > 0


def test_build_targets() -> None:
    anchors = torch.tensor([[5.0, 5.0, 10.0, 10.0], [50.0, 50.0, 10.0, 10.0], [5.0, 5.0, 12.0, 12.0]])
    face = torch.tensor([[0.0, 0.0, 11.0, 11.0]])
    coder = SSDBoxCoder()
    targets = build_targets([face, torch.zeros((0, 4))], anchors, AnchorMatcher(), coder)
    assert targets.labels.tolist() == [[1, 0, 1], [0, 0, 0]]
    expected = coder.encode(face.expand(3, 4), anchors)
    torch.testing.assert_close(targets.offsets[0, [0, 2]], expected[[0, 2]])
    assert targets.offsets[0, 1].abs().sum() == 0 and targets.offsets[1].abs().sum() == 0
    # Decoding the targets of the positive anchors gives the face back.
    torch.testing.assert_close(coder.decode(targets.offsets[0, [0, 2]], anchors[[0, 2]]), face.expand(2, 4))


def test_distillation_zero_when_student_equals_teacher() -> None:
    generator = torch.Generator().manual_seed(1)
    loc = torch.randn(2, 50, 4, generator=generator)
    conf = torch.randn(2, 50, 2, generator=generator) * 3
    losses = DistillationLoss()(loc, conf, loc.clone(), conf.clone(), torch.tensor(4.0))
    assert abs(losses["distill_conf"].item()) < 1e-6
    assert losses["distill_loc"].item() == 0.0


def test_distillation_against_numpy() -> None:
    generator = torch.Generator().manual_seed(2)
    loc, teacher_loc = torch.randn(2, 2, 50, 4, generator=generator)
    conf, teacher_conf = torch.randn(2, 2, 50, 2, generator=generator) * 2
    losses = DistillationLoss(conf_weight=0.5, loc_weight=3.0, box_threshold=0.6)(
        loc, conf, teacher_loc, teacher_conf, torch.tensor(5.0)
    )
    log_p = log_softmax(teacher_conf.double().numpy())
    log_q = log_softmax(conf.double().numpy())
    kl = (np.exp(log_p) * (log_p - log_q)).sum()
    confident = np.exp(log_p[..., 1]) > 0.6
    assert 0 < confident.sum() < confident.size
    box = smooth_l1(loc.double().numpy()[confident] - teacher_loc.double().numpy()[confident]).sum()
    assert abs(losses["distill_conf"].item() - 0.5 * kl / 5) < 1e-4
    assert abs(losses["distill_loc"].item() - 3.0 * box / 5) < 1e-4


def test_soft_targets_by_hand() -> None:
    """Five 20 px anchors (cxcywh) and three teacher boxes, with the default matcher (positive at
    IoU 0.35, a box forced onto its best anchor from IoU 0.2):

    - box A (0, 0, 20, 20), score 0.9, is anchor 0 exactly (IoU 1); anchor 1, 10 px to the right,
      overlaps it 200 / 600 = 1/3 < 0.35: not matched.
    - box B (42, 40, 62, 60), score 0.3, overlaps anchor 2 (40, 40, 60, 60) by 360 / 440 = 0.82
      and anchor 4 (48, 40, 68, 60) by 280 / 520 = 0.54: both matched, but anchor 4 is a labelled
      face, so its probability is 1 and it regresses onto nothing of the teacher's.
    - box C (95, 95, 105, 105), score 0.7, 10 px inside anchor 3 (90, 90, 110, 110): IoU 0.25, below
      0.35 but forced onto its best anchor, as a labelled face of that size would be.

    With the box threshold 0.5, anchors 0 and 3 regress onto A and C weighted by 0.9 and 0.7; B's
    0.3 is too unsure. The second image has no teacher box: its targets are its labels."""
    anchors = torch.tensor(
        [[10, 10, 20, 20], [20, 10, 20, 20], [50, 50, 20, 20], [100, 100, 20, 20], [58, 50, 20, 20]],
        dtype=torch.float32,
    )
    boxes = torch.tensor([[0, 0, 20, 20], [42, 40, 62, 60], [95, 95, 105, 105]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.3, 0.7])
    labels = torch.tensor([[0, 0, 0, 0, 1], [0, 1, 0, 0, 0]])
    nothing = (torch.zeros((0, 4)), torch.zeros((0,)))

    targets = build_soft_targets([(boxes, scores), nothing], labels, anchors, AnchorMatcher(), SSDBoxCoder())

    torch.testing.assert_close(targets.probs, torch.tensor([[0.9, 0, 0.3, 0.7, 1], [0, 1, 0, 0, 0]]))
    torch.testing.assert_close(targets.box_weights, torch.tensor([[0.9, 0, 0, 0.7, 0], [0, 0, 0, 0, 0]]))
    torch.testing.assert_close(targets.class_weights, torch.tensor([[1.0, 1, 1, 1, 0], [1, 0, 1, 1, 1]]))
    # A is anchor 0 itself: zero offsets. C shares anchor 3's centre at half its size:
    # log(10 / 20) / 0.2 for both sides.
    half = float(np.log(0.5) / 0.2)
    torch.testing.assert_close(targets.offsets[0, 0], torch.zeros(4))
    torch.testing.assert_close(targets.offsets[0, 3], torch.tensor([0.0, 0.0, half, half]))
    assert targets.offsets[0, 1].abs().sum() == 0 and targets.offsets[1].abs().sum() == 0


def soft_losses_by_numpy(
    loc: np.ndarray, conf: np.ndarray, targets: SoftTargets, normaliser: float
) -> tuple[float, float]:
    """Binary KL(t || p) summed over the anchors of class weight 1, and the score-weighted smooth
    L1, in float64."""
    p = np.exp(log_softmax(conf.astype(np.float64))[..., 1])
    t = targets.probs.double().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(t > 0, t * np.log(t / p), 0) + np.where(t < 1, (1 - t) * np.log((1 - t) / (1 - p)), 0)
    box = smooth_l1(loc.astype(np.float64) - targets.offsets.double().numpy()).sum(axis=2)
    kl = np.where(targets.class_weights.numpy() > 0, kl, 0)
    return kl.sum() / normaliser, (targets.box_weights.double().numpy() * box).sum() / normaliser


def test_soft_target_loss_against_numpy() -> None:
    generator = torch.Generator().manual_seed(4)
    loc = torch.randn(2, 30, 4, generator=generator)
    conf = torch.randn(2, 30, 2, generator=generator) * 2
    probs = torch.rand(2, 30, generator=generator)
    probs[0, :5], probs[1, :5] = 0.0, 1.0  # the ends, where the entropy's 0 log 0 is 0
    weights = torch.where(probs > 0.5, probs, 0.0)
    labelled = torch.zeros(2, 30)
    labelled[:, 10:14] = 1  # labelled faces: left to the labels' loss
    targets = SoftTargets(probs, torch.randn(2, 30, 4, generator=generator), weights, 1 - labelled)

    losses = SoftTargetDistillation(conf_weight=0.5, loc_weight=3.0)(loc, conf, targets, torch.tensor(4.0))

    kl, box = soft_losses_by_numpy(loc.numpy(), conf.numpy(), targets, 4.0)
    assert abs(losses["soft_conf"].item() - 0.5 * kl) < 1e-4 * kl
    assert abs(losses["soft_loc"].item() - 3.0 * box) < 1e-4 * box


def test_soft_target_loss_is_minimised_by_the_teachers_probabilities() -> None:
    """At logits whose softmax is the teacher's probability the loss is 0 and flat: autograd's
    gradient and central differences are both ~0, and every step off it raises the loss. (Plain
    cross-entropy has the same minimiser but not the value 0; a swapped t / 1 - t has neither.)"""
    t = torch.tensor([[0.02, 0.3, 0.5, 0.93, 0.999]], dtype=torch.float64)
    logits = torch.stack([torch.zeros_like(t), torch.log(t / (1 - t))], dim=2).requires_grad_()
    targets = SoftTargets(
        t, torch.zeros(1, 5, 4, dtype=torch.float64), torch.zeros_like(t), torch.ones_like(t)
    )
    loss = SoftTargetDistillation()
    loc = torch.zeros(1, 5, 4, dtype=torch.float64)

    def value(conf: torch.Tensor) -> float:
        return loss(loc, conf, targets, torch.tensor(1.0, dtype=torch.float64))["soft_conf"].item()

    at_teacher = loss(loc, logits, targets, torch.tensor(1.0, dtype=torch.float64))["soft_conf"]
    at_teacher.backward()
    assert abs(at_teacher.item()) < 1e-12
    assert logits.grad.abs().max() < 1e-12
    step = 1e-4
    for anchor in range(5):
        for logit in range(2):
            moved = torch.zeros_like(logits)
            moved[0, anchor, logit] = step
            ahead, behind = value(logits.detach() + moved), value(logits.detach() - moved)
            assert abs(ahead - behind) / (2 * step) < 1e-8  # central difference: flat
            assert ahead > 0 and behind > 0


def test_labelled_faces_are_left_to_the_labels_loss() -> None:
    """An anchor of a labelled face adds nothing to the class term however wrong the student is
    there (the multibox loss trains it); the same anchor unlabelled, with the teacher's 1, adds
    -log p."""
    conf = torch.tensor([[[4.0, -4.0], [0.0, 0.0]]])  # p(face) = sigmoid(-8) and 0.5
    probs = torch.tensor([[1.0, 0.0]])
    zeros = torch.zeros(1, 2, 4)
    loss = SoftTargetDistillation()
    labelled = SoftTargets(probs, zeros, torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))
    unlabelled = SoftTargets(probs, zeros, torch.zeros(1, 2), torch.ones(1, 2))
    half = float(np.log(2.0))  # KL(0 || 0.5)
    assert abs(loss(zeros, conf, labelled, torch.tensor(1.0))["soft_conf"].item() - half) < 1e-6
    wrong = float(np.log1p(np.exp(8.0)))  # -log sigmoid(-8)
    assert abs(loss(zeros, conf, unlabelled, torch.tensor(1.0))["soft_conf"].item() - (wrong + half)) < 1e-4
