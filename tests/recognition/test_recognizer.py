"""The recognizer: unit embeddings of the crop plus its mirror (checked against the network run by
hand), mirror invariance, which face is used and how it is aligned, verification against the
threshold on a hand-made case, NoFaceError, and a plan that embeds as torch does.

MobileFaceNet runs with random weights (seeded) saved to a temporary file with a model card: the
tests check the pipeline's arithmetic, not what trained weights recognise."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgevision.data.io import read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.detection.detections import Detections
from edgevision.errors import ConfigError, NoFaceError, ShapeError, UnknownModelError
from edgevision.models import RECOGNITION, create_model, default_model, list_models, model_info
from edgevision.recognition.alignment import align_face, face_crop_input
from edgevision.recognition.recognizer import (
    Recognizer,
    box_landmarks,
    cosine_distance,
    load_recognizer,
)

CARD_THRESHOLD = 0.42


@pytest.fixture(scope="module")
def weights(tmp_path_factory, astronaut_path) -> Path:
    """Random MobileFaceNet weights (seed 0) with a card beside them holding a threshold. Their
    BN statistics are those of 32 crops of the photo (one training-mode pass): at initialisation
    (mean 0, variance 1) the activations shrink layer by layer until every image embeds in one
    direction, which would hide a wrong preprocessing or a missing mirror."""
    torch.manual_seed(0)
    model = create_model("mobilefacenet")
    photo = read_image(astronaut_path)
    rng = np.random.default_rng(0)
    crops = [photo[y : y + 112, x : x + 112] for y, x in rng.integers(0, 400, (32, 2))]
    batch = torch.from_numpy(((np.stack(crops)[..., ::-1] - 127.5) / 128.0).transpose(0, 3, 1, 2).copy())
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # the pass's statistics, not a mix with the initial ones
    with torch.no_grad():
        model.train()(batch.float())
    path = tmp_path_factory.mktemp("mfn") / "mobilefacenet_random.pth"
    torch.save(model.state_dict(), path)
    card = {"model": "mobilefacenet", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps({**card, "threshold": CARD_THRESHOLD}))
    return path


@pytest.fixture(scope="module")
def recognizer(weights) -> Recognizer:
    return load_recognizer(weights=weights, device="cpu")


@pytest.fixture(scope="module")
def face_crop(astronaut_path) -> np.ndarray:
    """A 112x92 (HxW) head crop around the astronaut's face, as ORL's are: face_crop_input pads
    it by 10 px a side, evenly, so the crop of its mirror image is the mirror of its crop."""
    return np.ascontiguousarray(read_image(astronaut_path)[62:174, 180:272])


def hand_embedding(model: torch.nn.Module, crop: np.ndarray) -> np.ndarray:
    """The network on an aligned BGR crop and on its mirror, summed, L2-normalised, written out:
    RGB, (x - 127.5) / 128, NCHW."""
    rgb = crop[:, :, ::-1].astype(np.float32)
    x = torch.from_numpy(((rgb - 127.5) / 128.0).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        summed = model(x) + model(torch.flip(x, dims=[3]))
    return (summed / summed.norm()).numpy()[0]


def test_mobilefacenet_is_the_default_recognition_model() -> None:
    assert default_model(RECOGNITION) == "mobilefacenet"


@pytest.mark.parametrize("name", [n for n in list_models(RECOGNITION) if model_info(n).weights is not None])
def test_a_bundled_recognizer_loads_by_name_with_its_threshold(name, astronaut_path) -> None:
    threshold = model_info(name).weights_meta["threshold"]
    assert 0.0 < threshold < 1.0  # a cosine distance; 1 is orthogonal embeddings
    recognizer = load_recognizer(name, device="cpu")
    assert recognizer.threshold == threshold
    result = recognizer.verify(astronaut_path, np.ascontiguousarray(read_image(astronaut_path)[:, ::-1]))
    assert result.same and result.distance < threshold  # her photo and its mirror image


def test_embed_gives_unit_vectors(recognizer, astronaut_path, face_crop) -> None:
    for embedding in (recognizer.embed(astronaut_path), recognizer.embed(face_crop, crop=True)):
        assert embedding.shape == (128,) and embedding.dtype == np.float32
        assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-6)
    assert recognizer.embedding_size == 128 and recognizer.model_name == "mobilefacenet"


def test_the_mirror_sum_is_the_network_run_by_hand(recognizer, weights, face_crop) -> None:
    model = create_model("mobilefacenet", weights=weights).eval()
    aligned = face_crop_input(face_crop)
    expected = hand_embedding(model, aligned)
    np.testing.assert_allclose(recognizer.embed(face_crop, crop=True), expected, atol=1e-5)
    np.testing.assert_allclose(recognizer.embed_crops(aligned[None])[0], expected, atol=1e-5)
    # The mirror matters: the crop alone embeds elsewhere.
    with torch.no_grad():
        alone = model(
            torch.from_numpy(((aligned[:, :, ::-1] - 127.5) / 128.0).transpose(2, 0, 1).copy()).float()[None]
        )
    assert cosine_distance(alone[0].numpy(), expected) > 1e-4


def test_a_mirrored_image_gives_the_same_embedding(recognizer, face_crop) -> None:
    mirrored = np.ascontiguousarray(face_crop[:, ::-1])
    assert not np.array_equal(mirrored, face_crop)  # the face is not symmetric pixel for pixel
    np.testing.assert_allclose(
        recognizer.embed(mirrored, crop=True), recognizer.embed(face_crop, crop=True), atol=1e-6
    )
    # Grey images embed as their three-channel copies.
    grey = cv2.cvtColor(face_crop, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(
        recognizer.embed(grey, crop=True), recognizer.embed(np.dstack([grey] * 3), crop=True), atol=1e-6
    )


class FixedDetector:
    """A detector that finds the same faces in every image."""

    def __init__(self, faces) -> None:
        self.faces = faces

    def detect(self, image: np.ndarray):
        assert image.ndim == 3 and image.shape[2] == 3  # grey images reach it as BGR
        return self.faces


class WithLandmarks:
    """Detections with ``(N, 5, 2)`` landmarks, as detectors with a landmark head return them."""

    def __init__(self, boxes, scores, landmarks) -> None:
        self.boxes, self.scores, self.landmarks = boxes, scores, landmarks

    def __len__(self) -> int:
        return len(self.boxes)

    def above(self, threshold: float) -> WithLandmarks:
        keep = self.scores >= threshold
        return WithLandmarks(self.boxes[keep], self.scores[keep], self.landmarks[keep])


def with_detector(recognizer: Recognizer, detector: FixedDetector) -> Recognizer:
    """The same network and preprocessing, another detector."""
    return Recognizer(
        recognizer.network, recognizer.preprocessing, model_name=recognizer.model_name, detector=detector
    )


def test_the_largest_face_scoring_half_is_used_aligned_on_its_box(recognizer, astronaut_path) -> None:
    boxes = torch.tensor([[10, 10, 50, 60], [180, 65, 270, 175], [0, 0, 300, 300]], dtype=torch.float32)
    faces = Detections(boxes, torch.tensor([0.99, 0.6, 0.4]))  # the largest box scores under 0.5
    recognizer = with_detector(recognizer, FixedDetector(faces))
    image = read_image(astronaut_path)
    # Box fallback: the points of BOX_LANDMARKS in the box, in pixels.
    points = box_landmarks(boxes[1].numpy())
    np.testing.assert_allclose(points[0], [180 + 0.27 * 90, 65 + 0.385 * 110], atol=1e-4)
    np.testing.assert_array_equal(recognizer.aligned_face(image), align_face(image, points))
    expected = recognizer.embed_crops(align_face(image, points)[None])[0]
    np.testing.assert_allclose(recognizer.embed(image), expected, atol=1e-6)
    used = recognizer.embed_face(image)
    assert used.faces_found == 2 and used.score == pytest.approx(0.6)
    np.testing.assert_array_equal(used.box, boxes[1].numpy())
    every = recognizer.embed_faces(image)
    assert [face.score for face in every] == pytest.approx([0.99, 0.6])
    np.testing.assert_allclose(every[1].embedding, expected, atol=1e-5)
    np.testing.assert_array_equal(every[1].box, boxes[1].numpy())


def test_a_detector_s_landmarks_are_used_when_it_has_them(recognizer, astronaut_path) -> None:
    landmarks = torch.tensor(
        [[[205, 105], [245, 103], [226, 128], [210, 150], [243, 149]]], dtype=torch.float32
    )
    faces = WithLandmarks(torch.tensor([[180.0, 65, 270, 175]]), torch.tensor([0.9]), landmarks)
    recognizer = with_detector(recognizer, FixedDetector(faces))
    image = read_image(astronaut_path)
    expected = recognizer.embed_crops(align_face(image, landmarks[0].numpy())[None])[0]
    np.testing.assert_allclose(recognizer.embed(image), expected, atol=1e-6)


def angle_network(batch: np.ndarray) -> np.ndarray:
    """A 2-D embedding at the angle, in degrees, of the input's mean pixel value."""
    theta = np.deg2rad(batch.reshape(len(batch), -1).mean(1))
    return np.stack([np.cos(theta), np.sin(theta)], 1)


@pytest.mark.parametrize(
    ("grey", "threshold", "same", "distance"),
    [(60, 0.501, True, 0.5), (60, 0.499, False, 0.5), (90, 0.99, False, 1.0), (0, 0.001, True, 0.0)],
)
def test_verify_against_the_threshold_by_hand(grey, threshold, same, distance) -> None:
    recognizer = Recognizer(
        angle_network, Preprocessing(), model_name="angles", threshold=threshold, detector=lambda: None
    )
    # Uniform images at 0 and `grey`: embeddings at 0 and `grey` degrees, 1 - cos(grey) apart.
    a, b = np.zeros((112, 92), np.uint8), np.full((112, 92), grey, np.uint8)
    result = recognizer.verify(a, b, crop=True)
    assert result.same is same and result.threshold == threshold
    assert result.distance == pytest.approx(distance, abs=1e-6)
    assert result.distance == pytest.approx(1 - math.cos(math.radians(grey)), abs=1e-6)


def test_the_threshold_comes_from_the_card_or_is_given(weights, tmp_path) -> None:
    assert load_recognizer(weights=weights).threshold == CARD_THRESHOLD
    assert load_recognizer(weights=weights, threshold=0.3).threshold == 0.3
    bare = tmp_path / "bare.pth"
    bare.write_bytes(weights.read_bytes())
    recognizer = load_recognizer(weights=bare)
    assert recognizer.threshold is None
    with pytest.raises(ConfigError, match="^no verification threshold: .* give a threshold"):
        recognizer.verify(np.zeros((112, 92), np.uint8), np.zeros((112, 92), np.uint8), crop=True)
    for bad in (float("nan"), -0.1, 2.5):
        with pytest.raises(ConfigError, match="threshold must be a finite number in"):
            load_recognizer(weights=weights, threshold=bad)


def test_no_face_is_one_line_naming_the_image(recognizer, tmp_path) -> None:
    blank = np.full((240, 320, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match=r"^no face found in the image \(none scores 0.5 or more\)$"):
        recognizer.embed(blank)
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), blank)
    with pytest.raises(NoFaceError, match=f"^no face found in {path} "):
        recognizer.verify(path, path)


def test_bad_images_and_models_are_refused(recognizer, weights) -> None:
    for bad in (np.zeros((112, 92, 3), np.float32), np.zeros((112, 92, 4), np.uint8), np.zeros(5, np.uint8)):
        with pytest.raises(ShapeError, match="a face image is"):
            recognizer.embed(bad)
    with pytest.raises(
        UnknownModelError, match="'faceboxes'; it is a registered model, not a recognition model"
    ):
        load_recognizer("faceboxes")
    with pytest.raises(ConfigError, match="is a plan"):
        load_recognizer("x.plan", weights=weights)


@pytest.fixture(scope="module")
def plan(weights, tmp_path_factory) -> Path:
    """An fp32 plan of the random MobileFaceNet, built by our engine."""
    from edgevision.deploy.builder import build_engine

    return build_engine("mobilefacenet", tmp_path_factory.mktemp("plan") / "mfn.plan", weights=weights).path


def test_a_plan_embeds_as_torch_does(recognizer, weights, plan, face_crop, astronaut_path) -> None:
    planned = load_recognizer(plan, threads=1)
    assert planned.model_name == "mobilefacenet" and planned.embedding_size == 128
    # The plan's embeddings are comparable with those of the weights it was built from.
    assert (
        planned.weights_sha256
        == recognizer.weights_sha256
        == json.loads(weights.with_suffix(".json").read_text())["sha256"]
    )
    assert planned.threshold == CARD_THRESHOLD  # the card of the weights the plan was built from
    # A gallery tells comparable embeddings by this id: the plan's is its source weights'.
    assert planned.model_id == recognizer.model_id == f"mobilefacenet@{planned.weights_sha256[:12]}"
    np.testing.assert_allclose(
        planned.embed(face_crop, crop=True), recognizer.embed(face_crop, crop=True), atol=1e-4
    )
    np.testing.assert_allclose(planned.embed(astronaut_path), recognizer.embed(astronaut_path), atol=1e-4)
