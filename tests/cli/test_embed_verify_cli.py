"""`edgevision embed` and `edgevision verify`: what they write equals the API's embeddings, the
verdict against the threshold, the skip-or-stop policy, and every bad input as one line, exit 2,
nothing written. MobileFaceNet runs with random weights and a card (the arithmetic, not accuracy)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgevision.data.io import read_image
from edgevision.models import create_model
from edgevision.recognition.recognizer import load_recognizer

THRESHOLD = 0.25


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mfn") / "mfn.pth"
    torch.save(create_model("mobilefacenet").state_dict(), path)
    card = {"model": "mobilefacenet", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps({**card, "threshold": THRESHOLD}))
    return path


@pytest.fixture(scope="module")
def bare_weights(weights, tmp_path_factory) -> Path:
    """The same weights without a model card: no threshold."""
    path = tmp_path_factory.mktemp("bare") / "mfn.pth"
    path.write_bytes(weights.read_bytes())
    return path


@pytest.fixture(scope="module")
def crops(tmp_path_factory, astronaut_path) -> list[Path]:
    """Two 112x92 crops of the photo: her face and the flag's corner, as grey PGM files (ORL's)."""
    folder = tmp_path_factory.mktemp("crops")
    photo = cv2.cvtColor(read_image(astronaut_path), cv2.COLOR_BGR2GRAY)
    paths = [folder / "face.pgm", folder / "other.pgm"]
    cv2.imwrite(str(paths[0]), photo[62:174, 180:272])
    cv2.imwrite(str(paths[1]), photo[300:412, 10:102])
    return paths


def test_embed_writes_the_api_s_embeddings(run_cli, weights, crops, tmp_path) -> None:
    recognizer = load_recognizer(weights=weights)
    expected = np.stack([recognizer.embed(path, crop=True) for path in crops])
    npy, as_json = tmp_path / "e.npy", tmp_path / "e.json"
    code, out, err = run_cli("embed", *map(str, crops), "--crop", "--model", str(weights), "-o", str(npy))
    assert code == 0, err
    np.testing.assert_allclose(np.load(npy), expected, atol=1e-6)
    assert out.splitlines()[1].startswith(f"{crops[1]}: row 1, ")
    code, _, err = run_cli("embed", *map(str, crops), "--crop", "--model", str(weights), "-o", str(as_json))
    assert code == 0, err
    written = json.loads(as_json.read_text())
    assert written["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert written["model"] == "mobilefacenet" and [row["path"] for row in written["embeddings"]] == list(
        map(str, crops)
    )
    np.testing.assert_allclose([row["embedding"] for row in written["embeddings"]], expected, atol=1e-6)
    # Without -o: one JSON line per image.
    code, out, _ = run_cli("embed", str(crops[0]), "--crop", "--model", str(weights))
    line = json.loads(out)
    assert code == 0 and line["path"] == str(crops[0]) and line["box"] is None and line["faces"] == 1
    np.testing.assert_allclose(line["embedding"], expected[0], atol=1e-5)


def test_embed_says_which_face_of_two_it_embeds(run_cli, weights, astronaut_path, tmp_path) -> None:
    """The photo beside a half-size copy: two faces; the larger is used and its box printed."""
    photo = read_image(astronaut_path)
    two = np.zeros((512, 768, 3), np.uint8)
    two[:, :512], two[:256, 512:] = photo, cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    path = tmp_path / "two.png"
    cv2.imwrite(str(path), two)
    code, out, err = run_cli("embed", str(path), "--model", str(weights))
    record = json.loads(out)
    assert code == 0, err
    assert record["faces"] == 2 and record["score"] >= 0.5
    np.testing.assert_allclose(record["box"], [180, 65, 270, 175], atol=12)  # her face, by hand
    code, out, _ = run_cli("embed", str(path), "--model", str(weights), "-o", str(tmp_path / "e.npy"))
    assert code == 0 and f"{path}: row 0, the largest of 2 face(s), box [" in out


def test_unreadable_and_faceless_images_are_skipped_then_exit_2(run_cli, weights, crops, tmp_path) -> None:
    corrupt, blank = tmp_path / "corrupt.png", tmp_path / "blank.png"
    corrupt.write_bytes(b"not an image")
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    npy = tmp_path / "e.npy"
    args = ("embed", str(corrupt), str(crops[0]), str(blank), "--model", str(weights), "-o", str(npy))
    code, out, err = run_cli(*args)
    assert code == 2
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and str(corrupt) in warnings[0] and "no face found in" in warnings[1]
    assert np.load(npy).shape == (1, 128)  # the image that was embedded
    npy.unlink()
    code, _, err = run_cli(*args, "--strict")
    assert code == 2 and err.strip().startswith("error:") and str(corrupt) in err
    assert not npy.exists()


def test_verify_says_same_or_not_with_distance_and_threshold(run_cli, weights, crops) -> None:
    recognizer = load_recognizer(weights=weights)
    distance = 1 - float(recognizer.embed(crops[0], crop=True) @ recognizer.embed(crops[1], crop=True))
    model = ("--model", str(weights), "--crop")
    code, out, _ = run_cli("verify", str(crops[0]), str(crops[0]), *model)
    assert code == 0 and out.strip() == f"same person: cosine distance 0.0000 <= threshold {THRESHOLD:.4f}"
    code, out, _ = run_cli("verify", str(crops[0]), str(crops[1]), *model, "--threshold", "0")
    assert (
        code == 0 and out.strip() == f"not the same person: cosine distance {distance:.4f} > threshold 0.0000"
    )
    code, out, _ = run_cli("verify", str(crops[0]), str(crops[1]), *model, "--json")
    record = json.loads(out)
    assert code == 0 and record["threshold"] == THRESHOLD and record["same"] is (distance <= THRESHOLD)
    assert record["distance"] == pytest.approx(distance, abs=1e-5)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["verify", "{missing}", "{face}"], ["no such file", "missing.png"]),
        (["verify", "{face}", "{tmp}"], ["expected a file, got a folder"]),
        (
            ["verify", "{face}", "{face}", "--threshold", "nan"],
            ["--threshold must be a finite number in [0, 2], got nan"],
        ),
        (["verify", "{face}", "{face}", "--threshold", "2.5"], ["--threshold must be a finite number"]),
        (["embed", "{missing}"], ["no such file or folder", "missing.png"]),
        (["embed", "{face}", "-o", "{tmp}"], ["-o/--output", "is a folder"]),
        (["embed", "{face}", "-o", "{face}/e.npy"], ["-o/--output", "is a file, not a folder"]),
        (["embed", "{face}", "-o", "{tmp}/e.csv"], ["-o/--output must end in .npy or .json"]),
        (["embed", "{face}", "--model", "faceboxes"], ["not a recognition model"]),
        (["embed", "{face}", "--model", "{tmp}/none.pth"], ["none.pth"]),
        (["verify", "{face}", "{face}", "--crop", "--model", "{bare}"], ["no verification threshold"]),
    ],
)
def test_bad_inputs_are_one_line_and_write_nothing(
    run_cli, assert_one_line_error, crops, bare_weights, tmp_path, args, words
) -> None:
    names = {"missing": tmp_path / "missing.png", "face": crops[0], "tmp": tmp_path, "bare": bare_weights}
    filled = [arg.format(**names) for arg in args]
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run_cli(*filled)
    assert_one_line_error(code, err, *[word.format(**names) for word in words])
    assert out == "" and sorted(tmp_path.rglob("*")) == before
