"""``edgevision build`` and ``edgevision run``: a plan built from the command line detects the
face, and broken plans or calibration folders fail with one line, exit 2, and no plan written."""

from __future__ import annotations

import importlib.util
import json
import re
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from torchvision.models import MobileNet_V2_Weights

CATEGORIES = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet-1k, index order


@pytest.fixture(scope="module")
def plan_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgevision.deploy.builder import BuildOptions, build_engine

    path = tmp_path_factory.mktemp("plans") / "faceboxes.plan"
    return build_engine("faceboxes", path, BuildOptions(input_size=(240, 320))).path


def test_build_reports_the_passes_and_run_detects(run_cli, plan_path, astronaut_path, tmp_path):
    code, out, _ = run_cli(
        "build", "faceboxes", "-o", str(tmp_path / "f.plan"), "--input-size", "96x128", "--report"
    )
    assert code == 0
    # At 96x128 torch.export specialises the coarsest levels (a 1x1 map), so the counts are not
    # those of 480x640 (tests/deploy/test_passes.py); the 27 BNs fold at every size.
    assert re.search(r"\[Conv\+BN folding\] layers \d+ -> \d+ \(BatchNormalization -27\)", out)
    plan = re.escape(str(tmp_path / "f.plan"))
    assert re.search(rf"{plan}: fp32 plan for onnxruntime, layers \d+ -> \d+, activation arena", out)
    code, out, _ = run_cli("run", str(plan_path), str(astronaut_path))
    assert code == 0
    assert f"{astronaut_path}: 1 face(s)" in out


def test_build_prints_what_the_tuner_chose(run_cli, monkeypatch, tmp_path):
    """--tune may pick another precision and backend than those asked for: the line shows the
    plan's (a stand-in builder returns such a plan, so no timing decides the test)."""
    import edgevision.deploy.builder as builder

    def tuned(source, output, options, **kwargs):
        assert options.precision == "fp16" and options.backend == "ort"
        plan = SimpleNamespace(precision="fp32", backend="openvino")
        passes = [SimpleNamespace(layers_before=100, layers_after=60)]
        return SimpleNamespace(
            path=Path(output), plan=plan, passes=passes, memory=SimpleNamespace(arena_bytes=2**21)
        )

    monkeypatch.setattr(builder, "build_engine", tuned)
    code, out, _ = run_cli(
        "build", "faceboxes", "-o", str(tmp_path / "t.plan"), "--precision", "fp16", "--tune"
    )
    assert code == 0
    assert (
        out.strip()
        == f"{tmp_path / 't.plan'}: fp32 plan for openvino, layers 100 -> 60, activation arena 2.00 MiB"
    )


def test_a_detector_plan_runs_with_the_options_of_detect(run_cli, plan_path, astronaut_path, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    out = tmp_path / "out"
    args = [
        "run",
        str(plan_path),
        str(astronaut_path),
        str(tmp_path / "notes.jpg"),
        "--out",
        str(out),
        "--json",
    ]
    code, stdout, err = run_cli(*args, "--threshold", "0", "--nms-iou", "0.9", "--keep", "3")
    assert code == 2  # the unreadable input, skipped
    [record] = [json.loads(line) for line in stdout.splitlines()]
    assert record["path"] == str(astronaut_path) and len(record["faces"]) == 3 and record["ms"] > 0
    assert f"warning: skipped {tmp_path / 'notes.jpg'}: not a readable image" in err
    assert "summary: 1 image(s): 3 face(s); " in err and "1 input(s) skipped" in err
    assert [p.name for p in out.iterdir()] == ["astronaut.jpg"]
    code, stdout, _ = run_cli("run", str(plan_path), str(astronaut_path), "--json", "--threshold", "0.9")
    assert code == 0 and len(json.loads(stdout)["faces"]) == 1


def test_truncated_plan_is_one_line(run_cli, assert_one_line_error, plan_path, astronaut_path, tmp_path):
    broken = tmp_path / "broken.plan"
    broken.write_bytes(plan_path.read_bytes()[:-200])
    code, _, err = run_cli("run", str(broken), str(astronaut_path))
    assert_one_line_error(code, err, "truncated or corrupt plan file")


def test_plan_of_another_format_version_is_one_line(
    run_cli, assert_one_line_error, plan_path, astronaut_path, tmp_path
):
    other = tmp_path / "v2.plan"
    with zipfile.ZipFile(plan_path) as source, zipfile.ZipFile(other, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "manifest.json":
                manifest = json.loads(data)
                manifest["format_version"] = 2
                data = json.dumps(manifest).encode()
            target.writestr(name, data)
    code, _, err = run_cli("run", str(other), str(astronaut_path))
    assert_one_line_error(code, err, "format version 2", "reads version 1")


def test_calibration_folder_without_images_is_one_line(run_cli, assert_one_line_error, tmp_path):
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "notes.txt").write_text("no images here")
    out = tmp_path / "int8.plan"
    code, _, err = run_cli(
        "build", "faceboxes", "-o", str(out), "--precision", "int8", "--calib", str(tmp_path / "calib")
    )
    assert_one_line_error(code, err, "no images", "calib")
    assert not out.exists()


def test_pixel_input_classifier_plan_runs_from_the_command_line(
    run_cli, shared_weights, astronaut_path, tmp_path
):
    weights = shared_weights("mobilenet_v2_imagenet/mobilenet_v2-b0353104.pth")
    tops = {}
    for label, extra in (("float", []), ("pixels", ["--pixel-input"])):
        plan = str(tmp_path / f"{label}.plan")
        args = ["mobilenet_v2", "-o", plan, "--weights", str(weights), "--input-size", "160x160", *extra]
        code, _, err = run_cli("build", *args)
        assert code == 0, err
        code, out, err = run_cli("run", plan, str(astronaut_path), "--top", "1")
        assert code == 0, err
        index, name = re.search(r"top-1 in \d+\.\d ms: (\d+) (.+) -?\d+\.\d{3}$", out.strip()).groups()
        tops[label] = int(index)
        assert name == CATEGORIES[int(index)]  # the label, not only the index
    # The folded ImageNet normalisation changes only the zero-padded border: the same class.
    assert tops["pixels"] == tops["float"]


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="checks the message given without tensorrt"
)
def test_missing_backend_names_the_extra_to_install(run_cli, assert_one_line_error, tmp_path):
    # The extra's brackets survive the console's markup.
    code, _, err = run_cli("build", "faceboxes", "-o", str(tmp_path / "t.plan"), "--backend", "tensorrt")
    assert_one_line_error(code, err, "pip install edgevision[tensorrt]")
    assert not (tmp_path / "t.plan").exists()
