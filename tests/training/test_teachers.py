"""Teachers: YuNet and the reference FaceBoxes on the bundled photo, the ensemble's merge on a hand
case, the specs the CLI takes, a training set that carries a teacher's detections on the augmented
image, the same for the same seed, epoch and index, in any process; and the calibration of a
teacher's scores (matching, fit, map) on hand cases."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.ops import box_iou

from edgevision.data.transforms import Sample, faceboxes_train_transform
from edgevision.detection.detections import Detections
from edgevision.errors import ConfigError, ShapeError, UnknownModelError, WeightsError
from edgevision.models import create_model
from edgevision.training.detection_dataset import FaceTrainingSet, collate_detection
from edgevision.training.teacher_calibration import (
    UNMATCHED,
    CalibratedTeacher,
    ScoreCalibration,
    calibrate,
    fit_score_calibration,
    match_to_faces,
)
from edgevision.training.teachers import (
    DetectorTeacher,
    EnsembleTeacher,
    YuNetTeacher,
    ensemble,
    teachers_from_specs,
)

# The astronaut's face in the bundled photo, xyxy px (the reference FaceBoxes' box, rounded).
ASTRONAUT_FACE = np.array([[181, 67, 270, 176]], dtype=np.float32)


@pytest.fixture(scope="module")
def yunet_path(shared_weights) -> Path:
    return shared_weights("yunet/yunet_n_dynamic.onnx")


def test_yunet_finds_the_astronaut_where_the_reference_faceboxes_does(
    yunet_path, reference_weights, astronaut_path
):
    """One face above 0.5 for each teacher, above 0.8 for YuNet, the two boxes overlapping; below
    0.5 the low floor lets YuNet's unsure boxes through (what the default 0.9 of OpenCV drops)."""
    image = cv2.imread(str(astronaut_path))
    yunet = YuNetTeacher(yunet_path)(image)
    faceboxes = DetectorTeacher(create_model("faceboxes", weights=reference_weights))(image)

    for found in (yunet, faceboxes):
        assert len(found.above(0.5)) == 1
        assert found.scores.min() >= 0.05
        assert torch.equal(found.scores, found.scores.sort(descending=True).values)
    assert yunet.scores[0] > 0.8
    assert box_iou(yunet.boxes[:1], faceboxes.boxes[:1]).item() > 0.5
    assert len(yunet) > 1 and yunet.scores[1] < 0.5  # soft boxes come through
    assert (yunet.boxes >= 0).all() and (yunet.boxes[:, 2:] <= torch.tensor([512, 512])).all()


def test_yunet_gives_the_same_boxes_at_any_size_and_in_another_process(yunet_path, astronaut_path):
    """The input size is set per image (a 300x200 image and a 517x333 one); a pickled copy (what a
    spawned data-loading process gets) detects what the original does."""
    teacher = YuNetTeacher(yunet_path)
    image = cv2.imread(str(astronaut_path))
    for size in ((300, 200), (517, 333)):
        resized = cv2.resize(image, size)
        found = teacher(resized)
        scale = torch.tensor([size[0] / 512, size[1] / 512] * 2)
        assert box_iou(found.boxes[:1], torch.from_numpy(ASTRONAUT_FACE) * scale).item() > 0.5
        copy = pickle.loads(pickle.dumps(teacher))(resized)
        assert torch.equal(copy.boxes, found.boxes) and torch.equal(copy.scores, found.scores)
    with pytest.raises(ShapeError, match="uint8 BGR"):
        teacher(image[..., 0])


class FixedTeacher:
    """A teacher that finds the same detections on every image."""

    def __init__(self, boxes: list[list[float]], scores: list[float]) -> None:
        self.found = Detections(torch.tensor(boxes).reshape(-1, 4), torch.tensor(scores))

    def __call__(self, image: np.ndarray) -> Detections:
        return self.found


def test_the_ensemble_keeps_the_highest_scoring_box_of_each_face():
    """Teacher 1's (0,0,10,10) at 0.9 beats teacher 2's shifted copy at 0.6 (IoU 81/119 = 0.68);
    teacher 2's (52,50,62,60) at 0.5 beats teacher 1's (50,50,60,60) at 0.2 (IoU 80/120 = 0.67),
    box and score both teacher 2's, not an average; a face only teacher 2 sees keeps its 0.4."""
    first = FixedTeacher([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.2])
    second = FixedTeacher([[1, 1, 11, 11], [100, 100, 120, 120], [52, 50, 62, 60]], [0.6, 0.4, 0.5])
    merged = EnsembleTeacher([first, second])(np.zeros((8, 8, 3), np.uint8))
    assert merged.boxes.tolist() == [[0, 0, 10, 10], [52, 50, 62, 60], [100, 100, 120, 120]]
    torch.testing.assert_close(merged.scores, torch.tensor([0.9, 0.5, 0.4]))
    empty = EnsembleTeacher([FixedTeacher([], []), FixedTeacher([], [])])(np.zeros((8, 8, 3), np.uint8))
    assert len(empty) == 0


def test_specs_name_teachers_and_bad_ones_fail_in_one_line(tmp_path, yunet_path, reference_weights):
    assert teachers_from_specs([]) == [] and ensemble([]) is None
    (one,) = teachers_from_specs([f"yunet={yunet_path}"])
    assert isinstance(one, YuNetTeacher) and ensemble([one]) is one
    both = ensemble(teachers_from_specs([f"yunet={yunet_path}", f"faceboxes={reference_weights}"]))
    assert isinstance(both, EnsembleTeacher)
    assert [type(t) for t in both.teachers] == [YuNetTeacher, DetectorTeacher]
    assert isinstance(teachers_from_specs(["faceboxes"])[0], DetectorTeacher)  # its bundled weights

    not_onnx = tmp_path / "yunet.onnx"
    not_onnx.write_text("not a model\n")
    bad = [
        (["yunet"], ConfigError, "yunet=PATH"),
        (["=x.onnx"], ConfigError, "NAME=WEIGHTS"),
        (["faceboxes="], ConfigError, "NAME=WEIGHTS"),
        (["nosuch=x.pth"], UnknownModelError, "teachers: yunet, faceboxes"),
        (["mobilenet_v2"], UnknownModelError, "unknown teacher 'mobilenet_v2'"),
        ([f"yunet={tmp_path / 'missing.onnx'}"], WeightsError, "not found"),
        ([f"yunet={not_onnx}"], WeightsError, "yunet.onnx is not a YuNet face detector"),
        ([f"yunet={reference_weights}"], WeightsError, "not a YuNet face detector"),
    ]
    for specs, error, words in bad:
        with pytest.raises(error, match=words):
            teachers_from_specs(specs)


def astronaut_training_set(astronaut_path: Path, teacher) -> FaceTrainingSet:
    """The photo twice, FaceBoxes' augmentation (random crop, colours, mirror) to 256 px."""
    return FaceTrainingSet(
        [astronaut_path] * 2,
        [ASTRONAUT_FACE] * 2,
        faceboxes_train_transform(256, (104, 117, 123)),
        create_model("faceboxes").input_preprocessing,
        seed=3,
        teacher=teacher,
    )


def same_sample(a: tuple, b: tuple) -> bool:
    """Whether two (image, faces, (boxes, scores)) samples are equal, bit for bit."""
    return all(torch.equal(x, y) for x, y in zip((*a[:2], *a[2]), (*b[:2], *b[2]), strict=True))


def test_a_training_set_carries_the_teachers_detections_on_the_augmented_image(yunet_path, astronaut_path):
    """Each sample's teacher boxes are YuNet's on that sample's augmented image (their best box is
    the cropped, mirrored, resized face), the same on every call and in a data-loading process,
    and another epoch's augmentation gives other boxes. Without a teacher a sample is
    (image, faces), as before."""
    dataset = astronaut_training_set(astronaut_path, YuNetTeacher(yunet_path))
    image, faces, (boxes, scores) = dataset[0]
    augmented = dataset.transform(
        Sample(cv2.imread(str(astronaut_path)), ASTRONAUT_FACE), np.random.default_rng([3, 0, 0])
    )
    expected = YuNetTeacher(yunet_path)(augmented.image)
    assert torch.equal(boxes, expected.boxes) and torch.equal(scores, expected.scores)
    assert scores[0] > 0.8 and box_iou(boxes[:1], faces).item() > 0.5

    assert same_sample(dataset[0], (image, faces, (boxes, scores)))
    loader = DataLoader(dataset, batch_size=2, num_workers=1, collate_fn=collate_detection)
    images, boxes_of, detections_of = next(iter(loader))  # made in another process
    assert same_sample((images[0], boxes_of[0], detections_of[0]), (image, faces, (boxes, scores)))

    dataset.set_epoch(1)
    assert not torch.equal(dataset[0][2][0], boxes)
    assert len(astronaut_training_set(astronaut_path, None)[0]) == 2


def test_collate_keeps_teacher_detections_per_image():
    image = torch.zeros(3, 8, 8)
    first = (image, torch.zeros(1, 4), (torch.ones(2, 4), torch.tensor([0.9, 0.1])))
    second = (image, torch.zeros(0, 4), (torch.zeros(0, 4), torch.zeros(0)))
    images, faces, detections = collate_detection([first, second])
    assert images.shape == (2, 3, 8, 8) and [len(f) for f in faces] == [1, 0]
    assert [len(boxes) for boxes, _ in detections] == [2, 0]
    assert torch.equal(detections[0][1], torch.tensor([0.9, 0.1]))
    assert len(collate_detection([first[:2], second[:2]])) == 2


def test_matching_gives_each_face_to_the_best_scoring_detection_over_the_iou():
    """Face 0 (0,0,10,10) is overlapped by detections 0 (score 0.6, IoU 1) and 1 (0.9, IoU 0.81):
    the better score takes it, the other is left without. Detection 2 overlaps face 1 (20,0,30,10)
    by exactly 0.5 (a 10x5 half) and takes it; detection 3 touches nothing."""
    found = Detections(
        torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 0, 30, 5], [50, 50, 60, 60]], dtype=torch.float32),
        torch.tensor([0.6, 0.9, 0.3, 0.8]),
    )
    faces = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=np.float32)
    assert match_to_faces(found, faces).tolist() == [UNMATCHED, 0, 1, UNMATCHED]
    assert match_to_faces(found, faces[:0]).tolist() == [UNMATCHED] * 4
    assert match_to_faces(Detections.empty(), faces).tolist() == []


def test_calibration_fit_by_hand():
    """Bins [0, 0.1), [0.1, 0.2), ..., one knot each at its mean score: 0.05 and 0.07 (none on a
    face) -> (0.06, 0); 0.15 on, 0.15 off, 0.17 off -> (0.156.., 1/3); 0.55 off -> (0.55, 0), raised
    to 1/3 (a higher score never means less); 0.95 and 1.0 (in the last bin, closed) on ->
    (0.975, 1). Between knots the map is linear, flat beyond them."""
    scores = np.array([0.05, 0.07, 0.15, 0.15, 0.17, 0.55, 0.95, 1.0])
    on_face = np.array([0, 0, 1, 0, 0, 0, 1, 1], dtype=bool)
    fitted = fit_score_calibration(scores, on_face)
    np.testing.assert_allclose(fitted.scores, [0.06, 0.47 / 3, 0.55, 0.975])
    np.testing.assert_allclose(fitted.probabilities, [0, 1 / 3, 1 / 3, 1])
    mapped = fitted(torch.tensor([0.0, 0.06, 0.55 + (0.975 - 0.55) / 2, 1.0]))
    torch.testing.assert_close(mapped, torch.tensor([0, 0, 2 / 3, 1], dtype=torch.float32))
    assert fit_score_calibration(np.zeros(0), np.zeros(0, bool)) == ScoreCalibration((0.0, 1.0), (0.0, 1.0))


def test_calibrate_leaves_out_detections_on_invalid_faces_and_rescores(tmp_path):
    """On an image with a valid face (0,0,10,10) and an invalid one (20,0,30,10): the 0.95 detection
    is on the valid face, the 0.85 one on the invalid face (left out of the fit: counted, it would
    add a knot), the 0.75 one on nothing. So 0.75 maps to 0, 0.95 to 1 and 0.85 halfway."""
    path = tmp_path / "image.png"
    cv2.imwrite(str(path), np.zeros((40, 40, 3), np.uint8))
    teacher = FixedTeacher([[0, 0, 10, 10], [20, 0, 30, 10], [30, 30, 40, 40]], [0.95, 0.85, 0.75])
    faces = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=np.float32)
    calibration = calibrate(teacher, [(path, faces, np.array([True, False]))])
    np.testing.assert_allclose(calibration.scores, [0.75, 0.95], rtol=1e-6)
    assert calibration.probabilities == (0.0, 1.0)
    rescored = CalibratedTeacher(teacher, calibration)(np.zeros((40, 40, 3), np.uint8))
    torch.testing.assert_close(rescored.scores, torch.tensor([1.0, 0.5, 0.0]))
    assert torch.equal(rescored.boxes, teacher.found.boxes)
