"""The plan file: a round trip keeps every field, and a missing, foreign, truncated, edited or
newer file is refused with a one-line error."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import pytest
from plan_files import Members, full_plan, manifest_with, relu_model, rewrite

import edgevision
from edgevision.deploy.plan import Binding, Plan, read_plan, write_plan
from edgevision.errors import ConfigError, PlanFileError, PlanVersionError


def written(tmp_path: Path, plan: Plan | None = None) -> Path:
    return write_plan(tmp_path / "plans" / "relu.plan", plan or full_plan())


def without(name: str) -> Callable[[Members], Members]:
    return lambda members: {key: data for key, data in members.items() if key != name}


def flip_model_byte(members: Members) -> Members:
    model = bytearray(members["model.onnx"])
    model[len(model) // 2] ^= 0xFF
    return {**members, "model.onnx": bytes(model)}


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    plan = full_plan()
    path = written(tmp_path, plan)
    assert read_plan(path) == plan
    assert not list(path.parent.glob(".*.tmp")), "the atomic write left a temporary file"
    first = path.read_bytes()
    assert write_plan(path, plan).read_bytes() == first, "the same plan must give the same bytes"


def test_round_trip_of_a_plan_without_optional_members(tmp_path: Path) -> None:
    plan = Plan(
        relu_model(),
        "fp32",
        (Binding("image", "float32", (1, 3, 480, 640)),),
        (Binding("out", "float32", (1, 3, 480, 640)),),
    )
    path = written(tmp_path, plan)
    assert read_plan(path) == plan
    assert zipfile.ZipFile(path).namelist() == ["manifest.json", "model.onnx"]


def test_manifest_records_versions_and_checksums(tmp_path: Path) -> None:
    with zipfile.ZipFile(written(tmp_path)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "edgevision-plan" and manifest["format_version"] == 1
    assert manifest["edgevision_version"] == edgevision.__version__
    assert manifest["backend"] == {"name": "onnxruntime", "version": ort.__version__}
    assert manifest["inputs"][0]["shape"] == [1, 3, "height", "width"]
    assert manifest["plugins"] == [{"domain": "edgevision", "op_type": "CReLU", "version": 1}]
    assert sorted(manifest["members"]) == ["calibration.json", "model.onnx", "timing_cache.json"]
    assert all(len(digest) == 64 for digest in manifest["members"].values())


ALTERATIONS = {
    "edited": (flip_model_byte, r"member 'model.onnx' of plan file .* does not match its sha256"),
    "format": (manifest_with(format="onnx"), r"does not name the 'edgevision-plan' format"),
    "missing": (without("calibration.json"), r"lacks the member\(s\) \['calibration.json'\] its manifest"),
    "extra": (lambda m: {**m, "evil.bin": b"x"}, r"has member\(s\) \['evil.bin'\] its manifest does not"),
    "no-manifest": (without("manifest.json"), r"not a plan file \(no manifest.json\)"),
    "bad-json": (lambda m: {**m, "manifest.json": b"{"}, r"manifest.json of .* is not JSON"),
    "malformed": (manifest_with(precision="fp64"), r"malformed manifest.json .* 'fp64'"),
    "no-model": (manifest_with(members={}), r"its member list lacks model.onnx"),
}


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_altered_plan_is_refused(tmp_path: Path, alteration: str) -> None:
    change, message = ALTERATIONS[alteration]
    path = written(tmp_path)
    rewrite(path, change)
    with pytest.raises(PlanFileError, match=message) as raised:
        read_plan(path)
    assert "\n" not in str(raised.value)


def test_newer_version_error_says_both_versions(tmp_path: Path) -> None:
    path = written(tmp_path)
    rewrite(path, manifest_with(format_version=999))
    version = edgevision.__version__
    with pytest.raises(
        PlanVersionError,
        match=rf"relu.plan is a plan of format version 999; edgevision {version} reads version 1$",
    ):
        read_plan(path)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = written(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PlanFileError, match=r"^truncated or corrupt plan file: .*relu.plan$"):
        read_plan(path)


def test_non_zip_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(relu_model())
    with pytest.raises(PlanFileError, match=r"^not a plan file: .*model.onnx$"):
        read_plan(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match=r"^no such plan file: .*absent.plan$"):
        read_plan(tmp_path / "absent.plan")
    with pytest.raises(PlanFileError, match=r"^not a file: "):
        read_plan(tmp_path)


def test_bad_plans_are_not_built() -> None:
    with pytest.raises(ConfigError, match=r"precision must be one of .*, got 'fp64'"):
        Plan(relu_model(), "fp64", (), ())
    with pytest.raises(ConfigError, match=r"cannot be named \['model.onnx'\]"):
        Plan(relu_model(), "fp32", (), (), extras={"model.onnx": b""})
