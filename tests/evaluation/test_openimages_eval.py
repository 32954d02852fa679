"""The Open Images challenge metric: a hand-computed fixture for each rule, and a loop-by-loop
transcription of the reference (TensorFlow Object Detection API) on random data.

Boxes are normalised xyxy ``(XMin, YMin, XMax, YMax)``; the files write them as XMin, XMax, YMin, YMax.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgevision.data.openimages import (
    BOX_COLUMNS,
    BoxAnnotations,
    ImageLabels,
    Predictions,
    read_predictions,
    write_predictions,
)
from edgevision.data.openimages_expansion import expand_boxes
from edgevision.data.openimages_hierarchy import ClassHierarchy, load_hierarchy
from edgevision.evaluation.openimages import evaluate, evaluate_files, match_image_class
from edgevision.evaluation.widerface import voc_ap as widerface_voc_ap

A, B = "/m/a", "/m/b"
TREE = {  # root > animal > {bird > owl, cat}
    "LabelName": "/m/root",
    "Subcategory": [
        {
            "LabelName": "/m/animal",
            "Subcategory": [
                {"LabelName": "/m/bird", "Subcategory": [{"LabelName": "/m/owl"}]},
                {"LabelName": "/m/cat"},
            ],
        }
    ],
}


def preds(*rows: tuple[str, str, float, list[float]]) -> Predictions:
    """``(image, class, score, xyxy)`` rows."""
    if not rows:
        return Predictions.empty()
    images, labels, scores, boxes = zip(*rows)
    return Predictions(list(images), list(labels), list(scores), list(boxes))


# --- one hand-computed fixture per rule --------------------------------------------------------


def test_group_of_box_with_several_detections_inside() -> None:
    # Image i1, class A: a box G1 = [0, 0, .2, .2] and a group-of box G2 = [.5, .5, 1, 1].
    gt = BoxAnnotations.from_arrays(
        ["i1", "i1"], [A, A], [[0, 0, 0.2, 0.2], [0.5, 0.5, 1, 1]], group_of=[0, 1]
    )
    detections = preds(
        ("i1", A, 0.9, [0.3, 0.3, 0.4, 0.4]),  # on nothing: FP
        ("i1", A, 0.8, [0.6, 0.6, 0.7, 0.7]),  # inside G2 (IoA 1): G2's best detection
        ("i1", A, 0.75, [0.25, 0.5, 0.75, 0.6]),  # IoA with G2 exactly 0.5 (>= 0.5): inside G2, ignored
        ("i1", A, 0.7, [0, 0, 0.2, 0.2]),  # IoU 1 with G1: TP
        ("i1", A, 0.6, [0.8, 0.8, 0.9, 0.9]),  # inside G2: ignored
        ("i1", A, 0.5, [0.55, 0.55, 0.65, 0.65]),  # inside G2: ignored
        ("i1", A, 0.4, [0.4, 0.4, 0.6, 0.6]),  # IoA with G2 = .01 / .04 = .25: FP
    )
    result = evaluate(gt, detections)
    # Ground truth: 1 box + 1 group-of box = 2. Counted, by score: FP .9, G2 as one TP at .8,
    # TP .7, FP .4 -> precision 0, 1/2, 2/3, 1/2 at recall 0, 1/2, 1, 1. Envelope: 2/3 up to
    # recall 1. AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3. (Were the .75 detection a FP, AP would be 1/2.)
    assert result.num_gt == {A: 2.0}
    assert result.ap[A] == pytest.approx(2 / 3, abs=1e-9)
    assert result.mean_ap == pytest.approx(2 / 3, abs=1e-9)
    np.testing.assert_allclose(result.curves[A], [[0, 0], [1 / 2, 1 / 2], [2 / 3, 1], [1 / 2, 1]])
    # Group-of weight 0 (the Open Images V2 metric): G2 no longer counts, its detections are still
    # ignored: FP .9, TP .7, FP .4 over 1 box -> AP = 1 * 1/2 = 1/2.
    assert evaluate(gt, detections, group_of_weight=0.0).ap[A] == pytest.approx(1 / 2, abs=1e-9)


def test_detection_of_an_unverified_class_is_ignored() -> None:
    # i1 has a box of A only; i2 a box of B only. B is not verified on i1, so its detection there
    # is ignored, and so is every detection on i3, an image without ground truth.
    gt = BoxAnnotations.from_arrays(["i1", "i2"], [A, B], [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]])
    detections = preds(
        ("i1", B, 0.9, [0, 0, 0.5, 0.5]),  # B unverified on i1: ignored (else a FP)
        ("i3", A, 0.95, [0, 0, 0.5, 0.5]),  # i3 has no ground truth: ignored
        ("i2", B, 0.6, [0.5, 0.5, 1, 1]),  # TP
        ("i1", A, 0.5, [0, 0, 0.5, 0.5]),  # TP
    )
    result = evaluate(gt, detections)
    # B: one TP at .6 over 1 box -> AP 1 (were the .9 detection a FP: 1/2 * 1 = 1/2).
    # A: one TP at .5 over 1 box -> AP 1 (were the i3 detection a FP: 1/2).
    assert result.ap[B] == pytest.approx(1.0, abs=1e-9)
    assert result.ap[A] == pytest.approx(1.0, abs=1e-9)
    assert result.curves[B].shape == (1, 2) and result.num_images == 2
    # A positive image-level label of B on i1 verifies B there: the .9 detection becomes a FP.
    # B: FP .9, TP .6 -> precision 0, 1/2 at recall 0, 1 -> AP = 1/2.
    labelled = evaluate(gt, detections, ImageLabels.from_arrays(["i1"], [B], [1]))
    assert labelled.ap[B] == pytest.approx(0.5, abs=1e-9)


def test_negative_label_makes_detections_false_positives() -> None:
    # i1 has a box of A; i2 has a negative image-level label of A (A verified absent), no box.
    gt = BoxAnnotations.from_arrays(["i1"], [A], [[0.1, 0.1, 0.6, 0.6]])
    labels = ImageLabels.from_arrays(["i2"], [A], [0])
    detections = preds(
        ("i2", A, 0.9, [0.1, 0.1, 0.6, 0.6]),  # A is absent from i2: FP
        ("i1", A, 0.8, [0.1, 0.1, 0.6, 0.6]),  # TP
        ("i2", A, 0.7, [0.2, 0.2, 0.3, 0.3]),  # FP
    )
    # FP .9, TP .8, FP .7 over 1 box -> precision 0, 1/2, 1/3 at recall 0, 1, 1 -> AP = 1 * 1/2.
    assert evaluate(gt, detections, labels).ap[A] == pytest.approx(0.5, abs=1e-9)
    # Without the label, A is unverified on i2 and its detections there are ignored: AP = 1.
    assert evaluate(gt, detections).ap[A] == pytest.approx(1.0, abs=1e-9)


def test_hierarchy_expansion_of_a_leaf_box() -> None:
    hierarchy = ClassHierarchy.from_json(TREE)
    # i1: an owl box, which also counts as a bird and an animal. i2: a cat box (also an animal)
    # and a negative label "bird", which also says "no owl" on i2.
    gt = BoxAnnotations.from_arrays(["i1", "i2"], ["/m/owl", "/m/cat"], [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]])
    labels = ImageLabels.from_arrays(["i2"], ["/m/bird"], [0])
    expanded = expand_boxes(gt, hierarchy)
    assert expanded.label_names.tolist() == ["/m/owl", "/m/bird", "/m/animal", "/m/cat", "/m/animal"]
    detections = preds(
        ("i1", "/m/cat", 0.95, [0, 0, 0.5, 0.5]),  # cat unverified on i1: ignored
        ("i1", "/m/bird", 0.9, [0, 0, 0.5, 0.5]),  # the owl box, as a bird: TP
        ("i1", "/m/animal", 0.8, [0, 0, 0.5, 0.5]),  # the owl box, as an animal: TP
        ("i2", "/m/animal", 0.7, [0.5, 0.5, 1, 1]),  # the cat box, as an animal: TP
        ("i2", "/m/owl", 0.6, [0, 0, 0.1, 0.1]),  # no owl on i2 (negative bird, expanded down): FP
        ("i2", "/m/bird", 0.5, [0.5, 0.5, 1, 1]),  # no bird on i2: FP
        ("i1", "/m/owl", 0.4, [0, 0, 0.5, 0.5]),  # TP
    )
    result = evaluate(gt, detections, labels, hierarchy=hierarchy)
    # Ground truth: owl 1, bird 1, animal 2, cat 1.
    # owl: FP .6, TP .4 -> AP = 1 * 1/2 = 1/2.      bird: TP .9, FP .5 -> AP = 1.
    # animal: TP .8, TP .7 -> AP = 1.                cat: no counted detection -> AP = 0.
    # mAP = (1/2 + 1 + 1 + 0) / 4 = 0.625.
    assert result.num_gt == {"/m/animal": 2.0, "/m/bird": 1.0, "/m/cat": 1.0, "/m/owl": 1.0}
    expected = {"/m/owl": 0.5, "/m/bird": 1.0, "/m/animal": 1.0, "/m/cat": 0.0}
    for mid, ap in expected.items():
        assert result.ap[mid] == pytest.approx(ap, abs=1e-9), mid
    assert result.mean_ap == pytest.approx(0.625, abs=1e-9)
    # Unexpanded, bird has a label but no box (AP NaN, out of the mean) and animal is not even
    # evaluated. The owl's FP on i2 is then ignored (owl unverified there): owl AP 1, cat 0 ->
    # mAP 1/2.
    flat = evaluate(gt, detections, labels)
    assert flat.classes == ("/m/bird", "/m/cat", "/m/owl") and math.isnan(flat.ap["/m/bird"])
    assert flat.ap["/m/owl"] == pytest.approx(1.0, abs=1e-9)
    assert flat.mean_ap == pytest.approx(0.5, abs=1e-9)


def test_real_hierarchy_credits_a_parent_detection(data_dir: Path) -> None:
    path = data_dir / "openimages" / "bbox_labels_600_hierarchy.json"
    if not path.is_file():
        pytest.skip(f"Open Images hierarchy not found at {path}")
    hierarchy = load_hierarchy(path)
    spoon, utensil, tool = "/m/0cmx8", "/m/03hlz0c", "/m/07k1x"
    gt = BoxAnnotations.from_arrays(["i1"], [spoon], [[0.2, 0.2, 0.4, 0.4]])
    detections = preds(("i1", utensil, 0.9, [0.2, 0.2, 0.4, 0.4]), ("i1", tool, 0.8, [0.6, 0.6, 0.7, 0.7]))
    result = evaluate(gt, detections, hierarchy=hierarchy)
    # The spoon box is also one Kitchen utensil (once, though reached along two paths) and one
    # Tool: utensil TP .9 -> AP 1; tool FP .8 -> AP 0; spoon no detection -> AP 0.
    assert result.num_gt[utensil] == 1.0 and result.num_gt[tool] == 1.0
    assert result.ap[utensil] == pytest.approx(1.0, abs=1e-9)
    assert result.ap[tool] == 0.0 and result.ap[spoon] == 0.0


def test_greedy_matching_takes_the_best_box_without_falling_back() -> None:
    # G1 = [0, 0, .4, .4], G2 = [.1, 0, .5, .4]. The .8 detection's best box is G1 (IoU .818;
    # .739 with G2), already taken by the .9 detection: it is a FP, not a match to G2.
    gt = BoxAnnotations.from_arrays(["i1", "i1"], [A, A], [[0, 0, 0.4, 0.4], [0.1, 0, 0.5, 0.4]])
    detections = preds(("i1", A, 0.9, [0, 0, 0.4, 0.4]), ("i1", A, 0.8, [0.04, 0, 0.44, 0.4]))
    # TP .9, FP .8 over 2 boxes -> precision 1, 1/2 at recall 1/2, 1/2 -> AP = 1/2 * 1 = 1/2.
    assert evaluate(gt, detections).ap[A] == pytest.approx(0.5, abs=1e-9)


def test_iou_threshold_is_inclusive_and_empty_boxes_are_dropped() -> None:
    gt = BoxAnnotations.from_arrays(["i1"], [A], [[0, 0, 1, 1]])
    detections = preds(
        ("i1", A, 0.99, [0.3, 0.3, 0.3, 0.6]),  # zero width: dropped before matching (not a FP)
        ("i1", A, 0.9, [0, 0, 0.5, 1]),  # IoU exactly 1/2: TP
    )
    # TP .9 over 1 box -> AP 1.
    assert evaluate(gt, detections).ap[A] == pytest.approx(1.0, abs=1e-9)


def test_classes_without_ground_truth_or_detections() -> None:
    gt = BoxAnnotations.from_arrays(["i1"], [A], [[0, 0, 1, 1]])
    result = evaluate(gt, preds(("i1", B, 0.9, [0, 0, 1, 1])), classes=[A, B])
    assert result.ap[A] == 0.0  # a box, no detection
    assert math.isnan(result.ap[B]) and result.num_gt[B] == 0.0  # no ground truth: left out
    assert result.mean_ap == 0.0
    empty = evaluate(BoxAnnotations.empty(), preds())
    assert empty.classes == () and math.isnan(empty.mean_ap)


def test_voc_ap_still_importable_from_widerface() -> None:
    assert widerface_voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75, abs=1e-12)


# --- files --------------------------------------------------------------------------------------


def test_evaluate_files_matches_evaluate(tmp_path: Path) -> None:
    (tmp_path / "hierarchy.json").write_text(json.dumps(TREE))
    (tmp_path / "boxes.csv").write_text(
        ",".join(BOX_COLUMNS) + "\n"
        "i1,xclick,/m/owl,1,0.0,0.5,0.0,0.5,0,0,0,0,0\n"
        "i2,xclick,/m/cat,1,0.5,1.0,0.5,1.0,0,0,0,0,0\n"
        "i2,xclick,/m/cat,1,0.0,0.4,0.0,0.4,0,0,1,0,0\n"
    )
    (tmp_path / "labels.csv").write_text("ImageID,Source,LabelName,Confidence\ni2,verification,/m/bird,0\n")
    detections = preds(
        ("i1", "/m/bird", 0.9, [0, 0, 0.5, 0.5]),
        ("i2", "/m/owl", 0.6, [0, 0, 0.1, 0.1]),
        ("i2", "/m/cat", 0.55, [0.1, 0.1, 0.2, 0.2]),
        ("i2", "/m/animal", 0.7, [0.5, 0.5, 1, 1]),
        ("i1", "/m/owl", 0.4, [0, 0, 0.5, 0.5]),
    )
    write_predictions(tmp_path / "predictions.csv", detections)
    back = read_predictions(tmp_path / "predictions.csv")
    np.testing.assert_array_equal(back.boxes, detections.boxes)  # repr: exact round trip
    from_files = evaluate_files(
        tmp_path / "boxes.csv",
        tmp_path / "predictions.csv",
        tmp_path / "labels.csv",
        hierarchy_json=tmp_path / "hierarchy.json",
    )
    hierarchy = ClassHierarchy.from_json(TREE)
    gt = BoxAnnotations.from_arrays(
        ["i1", "i2", "i2"],
        ["/m/owl", "/m/cat", "/m/cat"],
        [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0, 0.4, 0.4]],
        group_of=[0, 0, 1],
    )
    in_memory = evaluate(
        gt, detections, ImageLabels.from_arrays(["i2"], ["/m/bird"], [0]), hierarchy=hierarchy
    )
    assert from_files.ap.keys() == in_memory.ap.keys()
    for mid in in_memory.ap:
        assert from_files.ap[mid] == pytest.approx(in_memory.ap[mid], abs=1e-12)
    # cat: the .55 detection lies in the group-of box: 2 ground truth (box + group), TP .55 -> 1/2.
    assert in_memory.ap["/m/cat"] == pytest.approx(0.5, abs=1e-9)
    # Restricted to one class, rows of its sub-classes and of its ancestors' labels still count.
    only_bird = evaluate_files(
        tmp_path / "boxes.csv",
        tmp_path / "predictions.csv",
        tmp_path / "labels.csv",
        hierarchy_json=tmp_path / "hierarchy.json",
        classes=["/m/bird", "/m/owl"],
    )
    assert only_bird.ap == {"/m/bird": in_memory.ap["/m/bird"], "/m/owl": in_memory.ap["/m/owl"]}


# --- against a transcription of the reference, on random data ----------------------------------


def _reference_tp_fp(det, scores, gt, group, threshold=0.5, weight=1.0):
    """A loop-by-loop transcription of ``per_image_evaluation._compute_tp_fp_for_single_class``
    (box mode, no difficult boxes), boxes in yxyx as the reference has them."""
    order = np.argsort(scores)[::-1]
    det, scores = det[order], scores[order]
    if len(gt) == 0:
        return scores, np.zeros(len(det))

    def area(b):
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def intersection(b1, b2):
        h = np.maximum(
            0.0, np.minimum(b1[:, None, 2], b2[None, :, 2]) - np.maximum(b1[:, None, 0], b2[None, :, 0])
        )
        w = np.maximum(
            0.0, np.minimum(b1[:, None, 3], b2[None, :, 3]) - np.maximum(b1[:, None, 1], b2[None, :, 1])
        )
        return h * w

    single, groups = gt[~group], gt[group]
    inter = intersection(det, single)
    iou = inter / (area(det)[:, None] + area(single)[None, :] - inter)
    ioa = np.transpose(intersection(groups, det) / area(det)[None, :])
    n = len(det)
    tp = np.zeros(n, dtype=bool)
    in_group = np.zeros(n, dtype=bool)
    if iou.shape[1] > 0:
        taken = np.zeros(iou.shape[1], dtype=bool)
        best = np.argmax(iou, axis=1)
        for i in range(n):
            if not tp[i] and iou[i, best[i]] >= threshold and not in_group[i]:
                if not taken[best[i]]:
                    tp[i] = True
                    taken[best[i]] = True
    group_scores = np.zeros(0)
    if ioa.shape[1] > 0:
        group_scores = np.zeros(ioa.shape[1])
        best = np.argmax(ioa, axis=1)
        for i in range(n):
            if not tp[i] and ioa[i, best[i]] >= threshold and not in_group[i]:
                in_group[i] = True
                group_scores[best[i]] = max(group_scores[best[i]], scores[i])
        group_scores = group_scores[(group_scores > 0) & (weight > 0)]
    keep = ~in_group
    return (
        np.concatenate([scores[keep], group_scores]),
        np.concatenate([tp[keep].astype(float), np.full(len(group_scores), weight)]),
    )


def _reference_ap(scores, labels, num_gt):
    """``metrics.compute_precision_recall`` then ``compute_average_precision``, transcribed."""
    if num_gt == 0:
        return math.nan
    order = np.argsort(scores)[::-1]
    tp = labels[order]
    cum_tp, cum_fp = np.cumsum(tp), np.cumsum((tp <= 0).astype(float))
    precision, recall = cum_tp / (cum_tp + cum_fp), cum_tp / num_gt
    if precision.size == 0:
        return 0.0
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = np.maximum(precision[i], precision[i + 1])
    index = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[index] - recall[index - 1]) * precision[index]))


def _random_boxes(rng, n):
    centre = rng.uniform(0.1, 0.9, (n, 2))
    size = rng.uniform(0.05, 0.5, (n, 2))
    return np.clip(np.concatenate([centre - size / 2, centre + size / 2], axis=1), 0, 1)


@pytest.mark.parametrize("seed", range(40))
def test_match_agrees_with_the_reference_transcription(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = _random_boxes(rng, int(rng.integers(0, 6)))
    group = rng.random(len(gt)) < 0.4
    # Detections near the boxes (jittered copies) and elsewhere; distinct scores.
    near = (
        gt[rng.integers(0, max(len(gt), 1), 8)] + rng.normal(0, 0.03, (8, 4)) if len(gt) else np.zeros((0, 4))
    )
    det = np.concatenate([near, _random_boxes(rng, 6)])
    det = det[(det[:, 2] > det[:, 0]) & (det[:, 3] > det[:, 1])]
    scores = rng.permutation(len(det)) / len(det) + 0.01
    order = np.argsort(scores, kind="stable")[::-1]
    ours = match_image_class(det[order], scores[order], gt, group)
    # The transcription takes yxyx boxes, as the reference stores them.
    theirs = _reference_tp_fp(det[:, [1, 0, 3, 2]], scores, gt[:, [1, 0, 3, 2]], group)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


@pytest.mark.parametrize("seed", range(5))
def test_map_agrees_with_the_reference_transcription(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    classes = [f"/m/c{k}" for k in range(4)]
    images = [f"img{k:02d}" for k in range(12)]
    rows = []
    for image in images:
        for _ in range(int(rng.integers(0, 5))):
            rows.append(
                (image, classes[int(rng.integers(0, 4))], _random_boxes(rng, 1)[0], rng.random() < 0.25)
            )
    gt = BoxAnnotations.from_arrays(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], group_of=[r[3] for r in rows]
    )
    label_rows = [(images[int(rng.integers(0, 12))], classes[int(rng.integers(0, 4))]) for _ in range(10)]
    labels = ImageLabels.from_arrays([r[0] for r in label_rows], [r[1] for r in label_rows], [0] * 10)
    det_rows = []
    for image in [*images, "unknown"]:
        for _ in range(int(rng.integers(0, 8))):
            det_rows.append(
                (image, classes[int(rng.integers(0, 4))], float(rng.random()), _random_boxes(rng, 1)[0])
            )
    detections = preds(*det_rows)
    result = evaluate(gt, detections, labels)

    # The reference's flow: verified classes per image; per image and class, tp/fp; per class AP.
    verified = {(r[0], r[1]) for r in rows} | set(label_rows)
    for cls in sorted({r[1] for r in rows} | {r[1] for r in label_rows}):
        scores, tps = [], []
        for image in sorted({r[0] for r in rows} | {r[0] for r in label_rows}):
            if (image, cls) not in verified:
                continue
            mine = [r for r in det_rows if r[0] == image and r[1] == cls]
            if not mine:
                continue
            g = [r for r in rows if r[0] == image and r[1] == cls]
            gt_boxes = np.array([r[2] for r in g]).reshape(-1, 4)[:, [1, 0, 3, 2]]
            s, t = _reference_tp_fp(
                np.array([r[3] for r in mine])[:, [1, 0, 3, 2]],
                np.array([r[2] for r in mine]),
                gt_boxes,
                np.array([r[3] for r in g], dtype=bool),
            )
            scores.append(s)
            tps.append(t)
        num_gt = sum(1 for r in rows if r[1] == cls)
        expected = _reference_ap(
            np.concatenate(scores or [np.zeros(0)]), np.concatenate(tps or [np.zeros(0)]), num_gt
        )
        if math.isnan(expected):
            assert math.isnan(result.ap[cls])
        else:
            assert result.ap[cls] == pytest.approx(expected, abs=1e-12), cls
