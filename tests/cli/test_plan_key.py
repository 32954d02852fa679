"""``--plan-key`` (and ``EDGEVISION_PLAN_KEY``): ``build`` signs the plan, ``run`` and ``detect``
require the signature; a bad key file fails in one line before any work, and a swapped plan's
error names the plan."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from edgevision.deploy.plan import Binding, Plan, write_plan
from edgevision.deploy.plan_signing import KEY_ENV


@pytest.fixture()
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key, other = tmp_path / "plan.key", tmp_path / "other.key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    other.write_text("fedcba9876543210fedcba9876543210\n")
    return key, other


def test_build_signs_and_run_and_detect_require_the_signature(
    run_cli, assert_one_line_error, keys, astronaut_path, tmp_path, monkeypatch
):
    key, other = keys
    plan = tmp_path / "signed.plan"
    code, _, err = run_cli(
        "build", "faceboxes", "-o", str(plan), "--input-size", "240x320", "--plan-key", str(key)
    )
    assert code == 0, err
    assert "signature.json" in zipfile.ZipFile(plan).namelist()

    code, out, _ = run_cli("run", str(plan), str(astronaut_path), "--plan-key", str(key))
    assert code == 0 and f"{astronaut_path}: " in out
    code, out, _ = run_cli("detect", str(astronaut_path), "--model", str(plan), "--plan-key", str(key))
    assert code == 0 and f"{astronaut_path}: " in out
    code, _, err = run_cli("run", str(plan), str(astronaut_path), "--plan-key", str(other))
    assert_one_line_error(code, err, "signed.plan", "does not verify with the given key")
    monkeypatch.setenv(KEY_ENV, str(other))
    code, _, err = run_cli("detect", str(astronaut_path), "--model", str(plan))
    assert_one_line_error(code, err, "signed.plan", "does not verify with the given key")
    monkeypatch.setenv(KEY_ENV, str(key))
    code, out, _ = run_cli("run", str(plan), str(astronaut_path))
    assert code == 0 and f"{astronaut_path}: " in out
    # eval and the API load plans through the same checks: the key, and no weights or device.
    code, _, err = run_cli(
        "eval", "widerface", "--model", str(plan), "--plan-key", str(other), "--data", str(tmp_path)
    )
    assert_one_line_error(code, err, "signed.plan", "does not verify with the given key")
    for extra in (["--weights", str(key)], ["--device", "cpu"]):
        code, _, err = run_cli("detect", str(astronaut_path), "--model", str(plan), *extra)
        assert_one_line_error(code, err, "is a plan: it holds its weights (no --weights)")
    from edgevision import load_detector

    assert len(load_detector(str(plan), plan_key=key).detect(astronaut_path).above(0.5)) >= 1


def test_a_bad_key_file_fails_before_the_build(run_cli, assert_one_line_error, keys, tmp_path):
    short = tmp_path / "short.key"
    short.write_text("secret\n")
    plan = tmp_path / "never.plan"
    code, _, err = run_cli("build", "faceboxes", "-o", str(plan), "--plan-key", str(short))
    assert_one_line_error(code, err, "short.key", "must be 16 to 4096 bytes")
    assert not plan.exists()
    code, _, err = run_cli("build", "faceboxes", "-o", str(plan), "--plan-key", str(tmp_path / "absent.key"))
    assert_one_line_error(code, err, "no such plan key file", "absent.key")


def test_a_plan_key_for_a_model_that_is_no_plan_is_refused(
    run_cli, assert_one_line_error, keys, astronaut_path
):
    code, _, err = run_cli("detect", str(astronaut_path), "--plan-key", str(keys[0]))
    assert_one_line_error(code, err, "(--plan-key) is for a plan", "'faceboxes'")


def pooling_plan(path: Path) -> Path:
    """A classifier-like plan (image -> pooled ``logits``) whose manifest says it was built from
    the FaceBoxes detector: what swapping a plan's model and manifest makes."""
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["logits"])],
        "pool",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    plan = Plan(
        model,
        "fp32",
        (Binding("image", "float32", (1, 3, "height", "width")),),
        (Binding("logits", "float32", (1, 3, 1, 1)),),
        source={"model": "faceboxes", "input_size": [96, 128]},
    )
    return write_plan(path, plan)


def test_a_swapped_plan_is_one_line_naming_it(run_cli, assert_one_line_error, astronaut_path, tmp_path):
    path = pooling_plan(tmp_path / "swapped.plan")
    for command in (
        ["run", str(path), str(astronaut_path)],
        ["detect", str(astronaut_path), "--model", str(path)],
    ):
        code, _, err = run_cli(*command)
        assert_one_line_error(code, err, "swapped.plan is not a FaceBoxes network", "the outputs ['logits']")
        assert " at 0x" not in err
