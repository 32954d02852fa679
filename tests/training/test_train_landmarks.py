"""Training FaceBoxes' landmark head: YuNet's points as the teacher's (against OpenCV's own
output), matched to the labelled faces and cached, and a short run of the head alone on WIDER
images that lowers the landmark loss and leaves every detection of the bundled model bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgevision.detection.detections import Detections
from edgevision.detection.detector import Detector
from edgevision.models import create_model, model_info
from edgevision.models.checkpoint import save_checkpoint
from edgevision.models.weights import load_weights
from edgevision.training.config import TrainConfig
from edgevision.training.detection_dataset import collate_detection
from edgevision.training.landmark_targets import cached_teacher_landmarks, matched_landmarks
from edgevision.training.objectives import AnchorObjective
from edgevision.training.single_shot_faces import (
    LANDMARK_CACHE,
    train_single_shot_faces,
    widerface_training_set,
)
from edgevision.training.teachers import YuNetTeacher


def fixed_batch_landmark_loss(model, data_dir: Path, run: Path) -> float:
    """The landmark loss of ``model`` on the first 4 WIDER train images as epoch 0 of a 256 px run
    augments them, with the landmark targets the run in ``run`` cached."""
    dataset = widerface_training_set(data_dir / "widerface", 256, model.input_preprocessing, 0, 4)
    with np.load(run / LANDMARK_CACHE) as cache:
        dataset.landmarks = np.split(cache["landmarks"], cache["offsets"][1:-1])
    batch = collate_detection([dataset[i] for i in range(4)])
    with torch.no_grad():
        losses, _ = AnchorObjective.for_model(model, 256)(model.eval(), batch)
    return float(losses["landmarks"])


@pytest.fixture(scope="module")
def yunet_path(shared_weights) -> Path:
    return shared_weights("yunet/yunet_n_dynamic.onnx")


def test_yunet_teacher_gives_opencvs_five_points_image_left_eye_first(yunet_path, astronaut_path):
    image = cv2.imread(str(astronaut_path))
    found = YuNetTeacher(yunet_path)(image)
    raw = cv2.FaceDetectorYN.create(str(yunet_path), "", (image.shape[1], image.shape[0]), 0.5)
    raw_faces = raw.detect(image)[1]
    best = raw_faces[raw_faces[:, 14].argmax()]
    assert found.landmarks is not None and found.landmarks.shape == (len(found), 5, 2)
    np.testing.assert_allclose(found.landmarks[0].numpy(), best[4:14].reshape(5, 2), atol=1e-4)
    (left_eye, right_eye, nose, left_mouth, right_mouth) = found.landmarks[0].tolist()
    assert left_eye[0] < nose[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_labelled_faces_take_the_points_of_the_teacher_box_they_overlap():
    points = torch.arange(20, dtype=torch.float32).reshape(2, 5, 2)
    found = Detections(
        torch.tensor([[100.0, 100.0, 200.0, 200.0], [0.0, 0.0, 50.0, 50.0]]), torch.tensor([0.9, 0.3]), points
    )
    labelled = np.array([[0, 0, 50, 50], [105, 100, 205, 200], [400, 400, 450, 450]], np.float32)
    matched = matched_landmarks(labelled, found)
    np.testing.assert_array_equal(matched[1], points[0].numpy())
    # The first face's teacher box scores 0.3 (< 0.5: not found), the third has none.
    assert np.isnan(matched[[0, 2]]).all()


def test_the_cache_is_used_for_the_same_images_and_teacher_only(tmp_path, astronaut_path, yunet_path):
    calls = []
    teacher = YuNetTeacher(yunet_path)

    def counting(image):
        calls.append(1)
        return teacher(image)

    boxes = [np.array([[170, 60, 270, 180], [0, 0, 10, 10]], np.float32)]
    cache = tmp_path / "cache.npz"
    first = cached_teacher_landmarks(counting, [astronaut_path], boxes, cache, "a")
    again = cached_teacher_landmarks(counting, [astronaut_path], boxes, cache, "a")
    assert len(calls) == 1
    np.testing.assert_array_equal(first[0], again[0])
    assert np.isfinite(first[0][0]).all() and np.isnan(first[0][1]).all()
    cached_teacher_landmarks(counting, [astronaut_path], boxes, cache, "another teacher")
    assert len(calls) == 2


def test_training_the_head_alone_lowers_its_loss_and_changes_no_detection(
    data_dir, tmp_path, yunet_path, astronaut_path
):
    torch.set_num_threads(1)
    # The bundled detector without its landmark head (as it was before the head was trained).
    plain = tmp_path / "plain.pth"
    bundled = torch.load(model_info("faceboxes").weights_path, weights_only=True)
    save_checkpoint(plain, {k: v for k, v in bundled.items() if not k.startswith("landm.")})
    config = TrainConfig(
        out_dir=tmp_path / "run",
        image_size=256,
        batch_size=4,
        epochs=8,
        lr=1e-1,
        warmup_epochs=0,
        milestones=(),
        workers=0,
        log_every=1,
        landmark_teacher=str(yunet_path),
        landmarks_only=True,
    )
    final = train_single_shot_faces(
        "faceboxes", data_dir / "widerface", config, max_images=4, model_options={"weights": str(plain)}
    )
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert all("landmarks" in json.loads(line)["epoch_mean"] for line in lines if "epoch_mean" in line)
    # On one fixed batch (epoch 0's augmentation), the head the run started from and its result.
    torch.manual_seed(config.seed)  # the recipe's initial head
    start = load_weights(create_model("faceboxes", landmarks=True), plain, "faceboxes", ("landm",))
    trained = create_model("faceboxes", weights=final)
    before = fixed_batch_landmark_loss(start, data_dir, tmp_path / "run")
    after = fixed_batch_landmark_loss(trained, data_dir, tmp_path / "run")
    assert after < 0.7 * before, (before, after)

    before = Detector(create_model("faceboxes", weights=plain), device=torch.device("cpu"))
    after = Detector(create_model("faceboxes", weights=final), device=torch.device("cpu"))
    old, new = before.detect(astronaut_path), after.detect(astronaut_path)
    assert old.landmarks is None and new.landmarks is not None and len(new) == len(old) > 0
    assert torch.equal(old.boxes, new.boxes) and torch.equal(old.scores, new.scores)
    state = torch.load(final, weights_only=True)  # every tensor but the head's, BN statistics included
    assert all(
        torch.equal(state[key], value) for key, value in bundled.items() if not key.startswith("landm.")
    )
