"""WIDER FACE evaluation: hand-computed APs, the +1 IoU convention, a slow loop reference, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from edgevision.errors import DatasetError, InputFileError, ShapeError
from edgevision.evaluation.plots import plot_pr_curves
from edgevision.evaluation.widerface import (
    SUBSETS,
    WiderFaceGroundTruth,
    _overlaps,
    evaluate,
    load_ground_truth,
    read_prediction_dir,
    read_prediction_file,
    write_prediction_file,
)


def _gt(boxes: dict, easy: dict, medium: dict, hard: dict) -> WiderFaceGroundTruth:
    return WiderFaceGroundTruth(boxes, {"easy": easy, "medium": medium, "hard": hard})


# --- a 3-image case computed by hand ------------------------------------------------------------
#
# Boxes x y w h. Raw scores span [0, 10], so the normalised score is raw / 10; they sit between
# threshold grid points (1 - k / 1000) so no comparison is on a boundary.
#   A: gA0 (0,0,10,10), gA1 (100,0,10,10), gA2 (200,0,10,10)
#      a1 = gA0, 10      -> 1.0      hit gA0
#      a2 = gA0, 8.0525  -> 0.80525  duplicate of gA0: a proposal that recalls nothing
#      a3 = gA2, 6.0525  -> 0.60525  hit gA2 (ignored in easy and medium: not a proposal there)
#      a4 = far away, 0  -> 0.0      false positive (passes only at the last threshold, 0.0)
#      gA1 is missed.
#   B: gB0 (0,0,20,20), gB1 (100,100,20,20)
#      b2 = (110,100,20,20), 9.0525 -> 0.90525: IoU with gB1 = 11*21 / (2*441 - 231) = 0.355 < 0.5,
#           a false positive
#      b1 = gB0, 7.0525  -> 0.70525  hit gB0;  gB1 is missed.
#   C: gC0 (50,50,30,30), no prediction at all (key absent): its face still counts.
# Counted faces: hard A{0,1,2} B{0,1} C{0} = 6; medium A{0,1} B{0,1} C{0} = 5; easy A{0,1} B{0} = 3.
#
# In descending score, cumulative (proposals, recalled):
#   hard:        a1 (1,1)  b2 (2,1)  a2 (3,1)  b1 (4,2)  a3 (5,3)  a4 (6,3)
#   medium/easy: a1 (1,1)  b2 (2,1)  a2 (3,1)  b1 (4,2)  a3 (4,2)  a4 (5,2)
# hard:   recall 1/6 at precision 1, 1, 1/3; 2/6 at 1/2; 3/6 at 3/5, 1/2. The envelope is 1 up to
#         recall 1/6 and 3/5 up to 3/6, so AP = 1/6 * 1 + 2/6 * 3/5 = 11/30.
# medium: recall 1/5 at precision 1 ..; 2/5 at 1/2, 1/2, 2/5 -> AP = 1/5 * 1 + 1/5 * 1/2 = 3/10.
# easy:   recall 1/3 at precision 1 ..; 2/3 at 1/2, 1/2, 2/5 -> AP = 1/3 * 1 + 1/3 * 1/2 = 1/2.
HAND_GT = dict(
    boxes={
        "1--A/a": [[0, 0, 10, 10], [100, 0, 10, 10], [200, 0, 10, 10]],
        "1--A/b": [[0, 0, 20, 20], [100, 100, 20, 20]],
        "2--C/c": [[50, 50, 30, 30]],
    },
    easy={"1--A/a": [0, 1], "1--A/b": [0], "2--C/c": []},
    medium={"1--A/a": [0, 1], "1--A/b": [0, 1], "2--C/c": [0]},
    hard={"1--A/a": [0, 1, 2], "1--A/b": [0, 1], "2--C/c": [0]},
)
HAND_PREDS = {
    "1--A/a": np.array(
        [
            [200, 0, 10, 10, 6.0525],  # a3, out of order on purpose: evaluate sorts
            [0, 0, 10, 10, 10.0],  # a1
            [300, 300, 10, 10, 0.0],  # a4
            [0, 0, 10, 10, 8.0525],  # a2
        ]
    ),
    "1--A/b": np.array([[110, 100, 20, 20, 9.0525], [0, 0, 20, 20, 7.0525]]),
}
HAND_AP = {"easy": 1 / 2, "medium": 3 / 10, "hard": 11 / 30}


def test_hand_computed_three_images() -> None:
    gt = _gt(**HAND_GT)
    result = evaluate(HAND_PREDS, gt, images=["1--A/a", "1--A/b", "2--C/c"])
    for subset in SUBSETS:
        assert result.ap[subset] == pytest.approx(HAND_AP[subset], abs=1e-9), subset
    assert result.num_images == 3
    assert result.num_faces == {"easy": 3, "medium": 5, "hard": 6}
    hard = result.curves["hard"]
    assert hard.shape == (1000, 2)
    np.testing.assert_allclose(hard[0], [1.0, 1 / 6])  # threshold 0.999: a1 only
    np.testing.assert_allclose(hard[-1], [0.5, 0.5])  # threshold 0: everything
    np.testing.assert_allclose(result.curves["medium"][-1], [2 / 5, 2 / 5])
    assert result.is_full_set and result.label == "WIDER val"  # all 3 ground-truth images


def test_normalisation_uses_only_the_evaluated_images() -> None:
    gt = _gt(**HAND_GT)
    images = ["1--A/a", "1--A/b", "2--C/c"]
    # A prediction of an image outside `images` (not even in the ground truth) changes nothing,
    # although its score would stretch the normalisation range.
    extra = {**HAND_PREDS, "9--X/z": np.array([[0, 0, 5, 5, 100.0]])}
    assert evaluate(extra, gt, images=images).ap == pytest.approx(HAND_AP, abs=1e-9)
    # Scores are normalised to [0, 1] over the evaluated images, so an affine change of every raw
    # score changes no AP. (Unnormalised, scores 3..73 would all pass every threshold in [0, 1).)
    affine = {key: rows * [1, 1, 1, 1, 7] + [0, 0, 0, 0, 3] for key, rows in HAND_PREDS.items()}
    assert evaluate(affine, gt, images=images).ap == pytest.approx(HAND_AP, abs=1e-9)
    # Default images = the keys of `predictions`: C and its face drop out.
    result = evaluate(HAND_PREDS, gt)
    assert result.num_images == 2 and result.num_faces["hard"] == 5
    with pytest.raises(DatasetError, match="not in the WIDER FACE ground truth"):
        evaluate(extra, gt)


def test_plus_one_iou_convention_at_the_threshold() -> None:
    gt_box = np.array([[0.0, 0.0, 10.0, 10.0]])  # pixels 0..10 inclusive: 11 x 11
    # 11 x 5.5 inside it: IoU = 60.5 / 121 = 0.5 exactly with +1 (4.5 / 10 = 0.45 without).
    assert _overlaps(np.array([[0.0, 0.0, 10.0, 4.5]]), gt_box)[0, 0] == 0.5
    # Boxes touching at x = 10 share one pixel column: 11 / (121 + 121 - 11).
    assert _overlaps(np.array([[10.0, 0.0, 10.0, 10.0]]), gt_box)[0, 0] == pytest.approx(11 / 231)
    assert _overlaps(np.array([[11.0, 0.0, 10.0, 10.0]]), gt_box)[0, 0] == 0.0

    gt = _gt({"0--E/i": gt_box}, {"0--E/i": [0]}, {"0--E/i": [0]}, {"0--E/i": [0]})
    at = evaluate({"0--E/i": np.array([[0.0, 0.0, 10.0, 4.5, 0.9]])}, gt)
    below = evaluate({"0--E/i": np.array([[0.0, 0.0, 10.0, 4.4, 0.9]])}, gt)
    assert at.ap == {"easy": 1.0, "medium": 1.0, "hard": 1.0}
    assert below.ap == {"easy": 0.0, "medium": 0.0, "hard": 0.0}


def test_degenerate_inputs() -> None:
    gt = _gt(**HAND_GT)
    nothing = evaluate({}, gt, images=list(HAND_GT["boxes"]))
    assert nothing.ap == {"easy": 0.0, "medium": 0.0, "hard": 0.0}
    assert np.isnan(nothing.curves["hard"][:, 0]).all() and (nothing.curves["hard"][:, 1] == 0).all()
    # No counted face: recall and AP undefined, as in the references.
    assert np.isnan(evaluate({}, gt, images=["2--C/c"]).ap["easy"])
    with pytest.raises(ShapeError):
        evaluate({"1--A/a": np.zeros((2, 4))}, gt)
    with pytest.raises(ShapeError):
        evaluate({"1--A/a": np.array([[0, 0, 1, 1, np.nan]])}, gt)


# --- a slow reference: the protocol as one loop per proposal and per threshold -------------------


def _slow_reference(preds: dict, gt: WiderFaceGroundTruth, images: list[str], thresh_num: int = 1000) -> dict:
    """The Python port's arithmetic, NaN envelope included, written as plain loops."""

    def iou(p, g):
        px2, py2, gx2, gy2 = p[0] + p[2], p[1] + p[3], g[0] + g[2], g[1] + g[3]
        iw = min(px2, gx2) - max(p[0], g[0]) + 1
        ih = min(py2, gy2) - max(p[1], g[1]) + 1
        if iw <= 0 or ih <= 0:
            return 0.0
        union = (px2 - p[0] + 1) * (py2 - p[1] + 1) + (gx2 - g[0] + 1) * (gy2 - g[1] + 1) - iw * ih
        return iw * ih / union

    scores = [row[4] for key in images for row in preds.get(key, [])]
    lo, hi = min(scores), max(scores)
    aps = {}
    for subset in SUBSETS:
        curve = np.zeros((thresh_num, 2))
        faces = 0
        for key in images:
            boxes = gt.boxes[key].tolist()
            counted = set(gt.counted[subset][key].tolist())
            faces += len(counted)
            rows = [list(row[:4]) + [(row[4] - lo) / (hi - lo)] for row in preds.get(key, [])]
            if not boxes or not rows:
                continue
            rows.sort(key=lambda row: -row[4])  # Python's sort is stable
            state = [0] * len(boxes)
            proposal, recall_after = [], []
            for row in rows:
                overlaps = [iou(row, box) for box in boxes]
                best = overlaps.index(max(overlaps))
                flag = 1
                if overlaps[best] >= 0.5:
                    if best not in counted:
                        state[best], flag = -1, -1
                    elif state[best] == 0:
                        state[best] = 1
                proposal.append(flag)
                recall_after.append(state.count(1))
            for t in range(thresh_num):
                thresh = 1 - (t + 1) / thresh_num
                passing = [i for i, row in enumerate(rows) if row[4] >= thresh]
                if passing:
                    last = passing[-1]
                    curve[t, 0] += proposal[: last + 1].count(1)
                    curve[t, 1] += recall_after[last]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = curve[:, 1] / curve[:, 0]
            recall = curve[:, 1] / faces
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        step = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1])
        aps[subset] = (ap, np.stack([precision, recall], 1))
    return aps


def _random_case(rng: np.random.Generator) -> tuple[dict, WiderFaceGroundTruth, list[str]]:
    boxes, counted, preds = {}, {s: {} for s in SUBSETS}, {}
    for i in range(int(rng.integers(2, 6))):
        key = f"{i}--E/img_{i}"
        m = int(rng.integers(0, 7)) if i else 0  # the first image has no face at all
        xy = rng.integers(0, 120, (m, 2))
        wh = rng.integers(4, 40, (m, 2))
        gt = np.concatenate([xy, wh], 1).astype(float)
        if m >= 2:
            gt[1] = gt[0]  # a duplicated face: only one of the pair can be recalled
        boxes[key] = gt
        hard = np.flatnonzero(rng.random(m) < 0.8)
        medium = hard[rng.random(len(hard)) < 0.7]
        counted["hard"][key], counted["medium"][key] = hard, medium
        counted["easy"][key] = medium[rng.random(len(medium)) < 0.6]
        if i == 1:
            continue  # this image has faces but no prediction
        picks = gt[rng.integers(0, m, int(rng.integers(0, 2 * m + 1)))] if m else np.zeros((0, 4))
        jittered = picks + rng.normal(0, 3, picks.shape)
        spurious = np.concatenate([rng.integers(0, 150, (2, 2)), rng.integers(4, 40, (2, 2))], 1)
        rows = np.concatenate([jittered, spurious])
        score = rng.integers(0, 6, (len(rows), 1)) / 5  # ties on purpose
        if i == 0:
            score[:2, 0] = [0.0, 1.0]  # a skipped image still sets the normalisation range
        preds[key] = np.concatenate([rows, score], 1)
    return preds, _gt(boxes, counted["easy"], counted["medium"], counted["hard"]), list(boxes)


@pytest.mark.parametrize("seed", range(12))
def test_matches_slow_reference(seed: int) -> None:
    preds, gt, images = _random_case(np.random.default_rng(seed))
    expected = _slow_reference(preds, gt, images)
    result = evaluate(preds, gt, images=images)
    for subset in SUBSETS:
        ap, curve = expected[subset]
        if np.isnan(ap):
            assert np.isnan(result.ap[subset])
        else:
            assert result.ap[subset] == pytest.approx(ap, abs=1e-12), subset
        np.testing.assert_allclose(result.curves[subset], curve, rtol=0, atol=1e-12)
    # The hand case too, through the same loops.
    hand = _slow_reference(HAND_PREDS, _gt(**HAND_GT), list(HAND_GT["boxes"]))
    assert {s: hand[s][0] for s in SUBSETS} == pytest.approx(HAND_AP, abs=1e-12)


# --- files ---------------------------------------------------------------------------------------


def test_prediction_file_round_trip(tmp_path: Path) -> None:
    rows = np.array([[10.04, 20.26, 30.0, 40.56, 0.98765], [1, 2, 3, 4, 0.5]])
    path = write_prediction_file(tmp_path, "0--Parade/0_Parade_marchingband_1_20", rows)
    assert path == tmp_path / "0--Parade" / "0_Parade_marchingband_1_20.txt"
    assert path.read_text() == (
        "0_Parade_marchingband_1_20\n2\n10.0 20.3 30.0 40.6 0.988\n1.0 2.0 3.0 4.0 0.500\n"
    )
    write_prediction_file(tmp_path, "1--Handshaking/1_empty", np.zeros((0, 5)))
    read = read_prediction_dir(tmp_path)
    assert sorted(read) == ["0--Parade/0_Parade_marchingband_1_20", "1--Handshaking/1_empty"]
    np.testing.assert_array_equal(
        read["0--Parade/0_Parade_marchingband_1_20"], [[10.0, 20.3, 30.0, 40.6, 0.988], [1, 2, 3, 4, 0.5]]
    )
    assert read["1--Handshaking/1_empty"].shape == (0, 5)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "0--Parade", "0_Parade_marchingband_1_20.txt", "1--Handshaking", "1_empty.txt",
    ]  # fmt: skip
    with pytest.raises(DatasetError, match="<event>/<image stem>"):
        write_prediction_file(tmp_path, "no_event", rows)
    with pytest.raises(ShapeError):
        write_prediction_file(tmp_path, "0--Parade/x", rows[:, :4])


def test_prediction_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="prediction folder not found"):
        read_prediction_dir(tmp_path / "absent")
    bad = tmp_path / "0--Parade" / "short.txt"
    bad.parent.mkdir()
    bad.write_text("short\n3\n1 2 3 4 0.5\n")
    with pytest.raises(DatasetError, match="3 boxes announced, 1 found"):
        read_prediction_file(bad)
    bad.write_text("short\nmany\n")
    with pytest.raises(DatasetError, match="malformed"):
        read_prediction_dir(tmp_path)


def _cells(items: list) -> np.ndarray:
    cells = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cells[i, 0] = item
    return cells


def test_load_ground_truth_official_layout(tmp_path: Path) -> None:
    # The official .mat layout: 61 x 1 cells per event; 1-based uint8 face indices.
    events = ["0--Parade", "1--Handshaking"]
    files = [["0_Parade_a", "0_Parade_b"], ["1_Handshaking_c"]]
    boxes = [[np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.int32), np.array([[0, 0, 9, 9]], np.int32)],
             [np.array([[10, 10, 20, 20], [40, 40, 5, 5], [0, 0, 0, 0]], np.int32)]]  # fmt: skip
    keep = {"easy": [[[2], []], [[1]]], "medium": [[[1, 2], []], [[1]]], "hard": [[[1, 2], [1]], [[1, 2]]]}
    common = {"event_list": _cells(events), "file_list": _cells([_cells(f) for f in files])}
    savemat(tmp_path / "wider_face_val.mat", {**common, "face_bbx_list": _cells([_cells(b) for b in boxes])})
    for subset, lists in keep.items():
        gt_list = _cells([_cells([np.array(k, np.uint8).reshape(-1, 1) for k in event]) for event in lists])
        savemat(tmp_path / f"wider_{subset}_val.mat", {**common, "gt_list": gt_list})

    gt = load_ground_truth(tmp_path)
    assert gt.keys == ["0--Parade/0_Parade_a", "0--Parade/0_Parade_b", "1--Handshaking/1_Handshaking_c"]
    np.testing.assert_array_equal(gt.boxes["1--Handshaking/1_Handshaking_c"][1], [40, 40, 5, 5])
    assert gt.boxes["0--Parade/0_Parade_a"].dtype == np.float64
    assert gt.counted["easy"]["0--Parade/0_Parade_a"].tolist() == [1]
    assert gt.counted["easy"]["0--Parade/0_Parade_b"].tolist() == []
    assert gt.counted["hard"]["1--Handshaking/1_Handshaking_c"].tolist() == [0, 1]

    (tmp_path / "wider_hard_val.mat").unlink()
    with pytest.raises(DatasetError, match="not found: .*wider_hard_val.mat"):
        load_ground_truth(tmp_path)
    (tmp_path / "wider_hard_val.mat").write_bytes(b"MATLAB? no, just bytes" * 10)
    with pytest.raises(DatasetError, match="cannot read WIDER FACE ground truth"):
        load_ground_truth(tmp_path)
    with pytest.raises(DatasetError, match="folder not found"):
        load_ground_truth(tmp_path / "absent")


def test_plot_pr_curves(tmp_path: Path) -> None:
    result = evaluate(HAND_PREDS, _gt(**HAND_GT), images=list(HAND_GT["boxes"]))
    path = plot_pr_curves(result.curves, tmp_path / "pr.png", title=result.label)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pr.png"]
    with pytest.raises(ValueError, match="format"):
        plot_pr_curves(result.curves, tmp_path / "pr.gif", title="x")


# --- the real WIDER val images present -------------------------------------------------------------


@pytest.fixture(scope="module")
def real(data_dir: Path) -> tuple[WiderFaceGroundTruth, list[str]]:
    """The val ground truth (all 3,226 images) and the keys of the val images present."""
    gt_dir = data_dir / "widerface" / "eval_tools" / "ground_truth"
    image_dir = data_dir / "widerface" / "WIDER_val" / "images"
    if not (gt_dir / "wider_face_val.mat").is_file() or not image_dir.is_dir():
        pytest.skip(f"WIDER FACE val ground truth or images not found under {data_dir / 'widerface'}")
    present = sorted(f"{p.parent.name}/{p.stem}" for p in image_dir.glob("*/*.jpg"))
    return load_ground_truth(gt_dir), present


def test_real_ground_truth_as_predictions(real, tmp_path: Path) -> None:
    gt, present = real
    assert len(gt.keys) == 3226 and len(present) == 140
    rng = np.random.default_rng(0)
    varied = {k: np.concatenate([gt.boxes[k], rng.random((len(gt.boxes[k]), 1))], 1) for k in present}
    constant = {k: np.concatenate([gt.boxes[k], np.ones((len(gt.boxes[k]), 1))], 1) for k in present}
    for preds in (varied, constant):
        result = evaluate(preds, gt, images=present)
        assert result.ap == pytest.approx({"easy": 1.0, "medium": 1.0, "hard": 1.0}, abs=1e-12)
        assert result.num_images == 140
        assert result.num_faces == {"easy": 345, "medium": 612, "hard": 785}
        assert not result.is_full_set and result.label == "WIDER val subset (140 of 3226 images)"

    # Drop one image's predictions: precision stays 1, so AP = the recall reached.
    dropped = present[0]
    partial = {k: v for k, v in varied.items() if k != dropped}
    result = evaluate(partial, gt, images=present)
    for subset in SUBSETS:
        lost = len(gt.counted[subset][dropped])
        assert lost > 0 or subset == "easy"
        faces = result.num_faces[subset]
        assert result.ap[subset] == pytest.approx((faces - lost) / faces)

    # Through the official files and back (scores rounded to 3 decimals, ties kept in order).
    for key, rows in varied.items():
        write_prediction_file(tmp_path, key, rows)
    assert evaluate(read_prediction_dir(tmp_path), gt, images=present).ap == pytest.approx(
        {"easy": 1.0, "medium": 1.0, "hard": 1.0}, abs=1e-12
    )
