"""The detector platform: a toy detector registered through the public registry alone (no list in
the API, the CLI or the weights package names it) trains, detects, evaluates and becomes a plan
through the same commands as FaceBoxes, and its detections are what its own contract says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import nms

from edgevision.data.io import read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.plan import read_plan, write_plan
from edgevision.detection.anchors import AnchorLevel, AnchorShape, square
from edgevision.detection.coder import SSDBoxCoder
from edgevision.detection.detector import Detector
from edgevision.detection.heads import apply_heads
from edgevision.detection.matcher import AnchorMatcher
from edgevision.detection.single_shot import SingleShotDetector
from edgevision.models import create_model, list_models, model_info, register_model, unregister_model
from edgevision.models.checkpoint import save_checkpoint

TOY = "toy_faces"
# RGB with a std: unlike FaceBoxes' mean-subtracted BGR, so a detector that ignored the model's
# preprocessing would see other inputs.
TOY_PREPROCESSING = Preprocessing("RGB", (123.7, 116.3, 103.5), (58.4, 57.1, 57.4))


class ToyFaces(SingleShotDetector):
    """Three stride-2 convs and heads on strides 8 and 16: square and tall anchors."""

    default_input_size = (240, 320)  # what a plan is built for without --input-size

    def __init__(self) -> None:
        super().__init__()
        self.anchor_levels = (
            AnchorLevel(stride=8, shapes=(square(16, density=2), AnchorShape(24, 32))),
            AnchorLevel(stride=16, shapes=(square(64),)),
        )
        self.coder = SSDBoxCoder()
        self.matcher = AnchorMatcher(positive_iou=0.35, min_forced_iou=0.2)
        self.input_preprocessing = TOY_PREPROCESSING
        self.body = nn.Sequential(
            *(
                nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.ReLU())
                for c_in, c_out in ((3, 8), (8, 16), (16, 16))
            )
        )
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        per_cell = [level.anchors_per_cell for level in self.anchor_levels]
        self.loc = nn.ModuleList(nn.Conv2d(16, k * 4, 3, padding=1) for k in per_cell)
        self.conf = nn.ModuleList(nn.Conv2d(16, k * 2, 3, padding=1) for k in per_cell)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine = self.body(x)
        return apply_heads(self.loc, self.conf, [fine, self.down(fine)], 2)


@pytest.fixture()
def toy_registered() -> Iterator[str]:
    register_model(TOY, task="detection", recipe="single_shot_faces")(lambda: ToyFaces())
    try:
        yield TOY
    finally:
        unregister_model(TOY)


def by_hand(model: ToyFaces, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The toy's detections computed without :class:`Detector`: RGB, (x - mean) / std, forward,
    SSD decode on its anchors, softmax, threshold 0.05, the best 5000, NMS 0.3, the best 750."""
    rgb = image[:, :, ::-1].astype(np.float32)
    x = (rgb - np.array(TOY_PREPROCESSING.mean, np.float32)) / np.array(TOY_PREPROCESSING.std, np.float32)
    with torch.no_grad():
        loc, conf = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
    anchors = model.anchors(image.shape[:2])
    boxes = SSDBoxCoder().decode(loc[0], anchors)
    scores = torch.softmax(conf[0], dim=1)[:, 1]
    keep = torch.nonzero(scores > 0.05).flatten()
    keep = keep[scores[keep].argsort(descending=True)[:5000]]
    boxes, scores = boxes[keep], scores[keep]
    kept = nms(boxes, scores, 0.3)[:750]
    return boxes[kept], scores[kept]


def test_the_toy_is_a_detector_once_registered(toy_registered: str, astronaut_path: Path) -> None:
    assert toy_registered in list_models("detection")
    torch.manual_seed(0)
    model = create_model(toy_registered).eval()
    image = read_image(astronaut_path)
    got = Detector(model, device=torch.device("cpu")).detect(image)
    boxes, scores = by_hand(model, image)
    assert len(got) == len(boxes) > 0
    torch.testing.assert_close(got.scores, scores)
    torch.testing.assert_close(got.boxes, boxes)
    # A two-scale pyramid: each scale's boxes come back in the image's pixels, one NMS over both.
    pyramid = Detector(model, device=torch.device("cpu"), scales=(1.0, 0.5)).detect(image)
    half = Detector(model, device=torch.device("cpu"), scales=(0.5,)).detect(image)
    assert len(pyramid) < len(got) + len(half)  # NMS ran across the scales
    assert pyramid.boxes.max() > 256  # the half-scale boxes were scaled back up too


@pytest.mark.slow
def test_the_toy_trains_detects_evaluates_and_builds_through_the_cli(
    toy_registered: str, run_cli, data_dir: Path, tmp_path: Path, astronaut_path: Path
) -> None:
    widerface = data_dir / "widerface"
    run = tmp_path / "run"
    code, out, err = run_cli(
        "train", TOY, "--data", str(widerface), "--out", str(run), "--image-size", "128",
        "--batch-size", "4", "--epochs", "1", "--max-images", "8", "--workers", "0",
        "--warmup-epochs", "0", "--milestones", "", "--log-every", "1",
    )  # fmt: skip
    assert code == 0, err
    weights = run / "final.pth"
    assert f"weights: {weights}" in out
    trained = create_model(TOY, weights=weights).eval()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [record.get("step") for record in log] == [1, 2, None], log

    code, out, err = run_cli(
        "detect", str(astronaut_path), "--model", TOY, "--weights", str(weights), "--json", "--threshold", "0"
    )
    assert code == 0, err
    faces = json.loads(out.splitlines()[0])["faces"]
    _, scores = by_hand(trained, read_image(astronaut_path))
    assert len(faces) == len(scores)
    assert [face["score"] for face in faces] == [round(s, 4) for s in scores.tolist()]

    code, out, err = run_cli(
        "eval", "widerface", "--model", TOY, "--weights", str(weights), "--data", str(widerface),
        "--out", str(tmp_path / "eval"),
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["model"] == TOY and results["faces"]["hard"] > 0
    assert all(0 <= ap <= 1 for ap in results["ap"].values())
    assert len(list((tmp_path / "eval" / "predictions").rglob("*.txt"))) == 140

    plan = tmp_path / "toy.plan"
    code, out, err = run_cli(
        "build", TOY, "-o", str(plan), "--weights", str(weights), "--input-size", "128x128"
    )
    assert code == 0, err
    code, out, err = run_cli(
        "detect", str(astronaut_path), "--model", str(plan), "--json", "--threshold", "0"
    )
    assert code == 0, err
    from_plan = json.loads(out.splitlines()[0])["faces"]
    assert len(from_plan) == len(faces)
    # Sorted by box: boxes of equal scores may come in either order.
    from_plan, faces = (sorted(found, key=lambda f: f["box"]) for found in (from_plan, faces))
    np.testing.assert_allclose([f["score"] for f in from_plan], [f["score"] for f in faces], atol=2e-4)
    np.testing.assert_allclose([f["box"] for f in from_plan], [f["box"] for f in faces], atol=0.05)


def test_a_plan_of_another_detector_is_refused(
    toy_registered: str, run_cli, tmp_path: Path, astronaut_path: Path
) -> None:
    """A FaceBoxes network in a plan whose manifest names the toy: both have outputs loc and conf,
    so only the anchor count tells them apart; decoding one with the other's anchors would be
    garbage, so it is a one-line error. (FaceBoxes without its landmark head: with it, the third
    output alone refuses the plan.)"""
    plain = tmp_path / "faceboxes_plain.pth"
    bundled = torch.load(model_info("faceboxes").weights_path, weights_only=True)
    save_checkpoint(plain, {key: value for key, value in bundled.items() if not key.startswith("landm.")})
    faceboxes = tmp_path / "faceboxes.plan"
    code, _, err = run_cli("build", "faceboxes", "--weights", str(plain), "-o", str(faceboxes))
    assert code == 0, err
    plan = read_plan(faceboxes)
    disguised = write_plan(tmp_path / "disguised.plan", replace(plan, source={**plan.source, "model": TOY}))
    code, _, err = run_cli("detect", str(astronaut_path), "--model", str(disguised), "--strict")
    assert code == 2
    assert "gave 5456 boxes for a 512x512 input, but ToyFaces has 21504 anchors there" in err
    assert len(err.strip().splitlines()) == 1, err
