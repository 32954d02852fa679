"""The manifest's schema: every value of a manifest is checked before use, and a bad one is a
one-line PlanFileError naming the field (reading) or a ConfigError (writing, nothing written)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from plan_files import full_plan, rewrite

from edgevision.deploy.plan import Binding, read_plan, write_plan
from edgevision.deploy.schema import Array, Either, Integer, Number, Record, SchemaError, Table, Text
from edgevision.errors import ConfigError, PlanFileError

Manifest = dict[str, Any]


def setting(*keys: str | int, to: Any) -> Callable[[Manifest], None]:
    """A change that sets the manifest value at ``keys`` (a path of names and indices)."""

    def change(manifest: Manifest) -> None:
        parent = manifest
        for key in keys[:-1]:
            parent = parent[key]
        parent[keys[-1]] = to

    return change


def dropping(*keys: str | int) -> Callable[[Manifest], None]:
    def change(manifest: Manifest) -> None:
        parent = manifest
        for key in keys[:-1]:
            parent = parent[key]
        del parent[keys[-1]]

    return change


# change -> the message's field and what it expects; each case was accepted (or crashed later
# with a TypeError, or ran slowly) before the schema.
BAD_MANIFESTS = {
    "mean-null": (
        setting("inputs", 0, "preprocessing", "mean", to=None),
        r"inputs\[0\]\.preprocessing\.mean: expected an array of 3 items, got None",
    ),
    "mean-nan": (
        setting("inputs", 0, "preprocessing", "mean", to=[1.0, float("nan"), 2.0]),
        r"inputs\[0\]\.preprocessing\.mean\[1\]: expected a finite number, got nan",
    ),
    "two-means": (
        setting("inputs", 0, "preprocessing", "mean", to=[1.0, 2.0]),
        r"inputs\[0\]\.preprocessing\.mean: expected an array of 3 items, got \[1\.0, 2\.0\]",
    ),
    "std-zero": (
        setting("inputs", 0, "preprocessing", "std", to=[1.0, 0.0, 1.0]),
        r"inputs\[0\]\.preprocessing\.std\[1\]: expected a finite positive number, got 0\.0",
    ),
    "std-missing": (
        dropping("inputs", 0, "preprocessing", "std"),
        r"inputs\[0\]\.preprocessing: the field 'std' is missing",
    ),
    "channel-order": (
        setting("inputs", 0, "preprocessing", "channel_order", to="BRG"),
        r"inputs\[0\]\.preprocessing\.channel_order: expected one of BGR, RGB, got 'BRG'",
    ),
    "pixels-text": (
        setting("inputs", 0, "preprocessing", "pixels", to="yes"),
        r"inputs\[0\]\.preprocessing\.pixels: expected true or false, got 'yes'",
    ),
    "preprocessing-extra": (
        setting("inputs", 0, "preprocessing", "scale", to=1.0),
        r"inputs\[0\]\.preprocessing: unknown field\(s\) \['scale'\]",
    ),
    "threads-2000": (
        setting("tactics", "session", "threads", to=2000),
        r"tactics\.session\.threads: expected an integer in \[0, 1024\], got 2000",
    ),
    "threads-negative": (
        setting("tactics", "session", "threads", to=-1),
        r"tactics\.session\.threads: .*got -1",
    ),
    "threads-bool": (
        setting("tactics", "session", "threads", to=True),
        r"tactics\.session\.threads: .*got True",
    ),
    "threads-float": (
        setting("tactics", "session", "threads", to=2.0),
        r"tactics\.session\.threads: .*got 2\.0",
    ),
    "tactic-backend": (
        setting("tactics", "session", "backend", to="cuda"),
        r"tactics\.session\.backend: expected one of ort, openvino, tensorrt, got 'cuda'",
    ),
    "tactic-level": (
        setting("tactics", "session", "graph_optimization_level", to="max"),
        r"tactics\.session\.graph_optimization_level: expected one of basic, extended, all",
    ),
    "tactic-per-channel": (
        setting("tactics", "session", "per_channel", to=1),
        r"tactics\.session\.per_channel: expected true or false, got 1",
    ),
    "tactic-missing": (
        dropping("tactics", "session", "threads"),
        r"tactics\.session: the field 'threads' is missing",
    ),
    "tactic-extra": (
        setting("tactics", "session", "fast", to=True),
        r"tactics\.session: unknown field\(s\) \['fast'\]",
    ),
    "tactics-extra": (
        setting("tactics", "kernel", to="winograd"),
        r"tactics: unknown field\(s\) \['kernel'\]",
    ),
    "passes": (
        setting("tactics", "passes", to="fold"),
        r"tactics\.passes: expected an array of 0 to 64 items",
    ),
    "precision": (
        setting("precision", to="fp64"),
        r"precision: expected one of fp32, fp16, int8, got 'fp64'",
    ),
    "runtime": (
        setting("backend", "name", to="tensorflow"),
        r"backend\.name: expected one of onnxruntime, openvino, tensorrt, got 'tensorflow'",
    ),
    "runtime-version": (setting("backend", "version", to=1.18), r"backend\.version: expected a string"),
    "calibrator": (
        setting("calibration_method", to="magic"),
        r"calibration_method: expected null or one of entropy, minmax, percentile, mse, got 'magic'",
    ),
    "plugin-version": (
        setting("plugins", 0, "version", to="1"),
        r"plugins\[0\]\.version: expected an integer",
    ),
    "plugin-missing": (dropping("plugins", 0, "domain"), r"plugins\[0\]: the field 'domain' is missing"),
    "no-inputs": (setting("inputs", to=[]), r"inputs: expected an array of 1 to 64 items, got \[\]"),
    "dtype": (
        setting("inputs", 0, "dtype", to="object"),
        r"inputs\[0\]\.dtype: expected one of float16, .*got 'object'",
    ),
    "dimension": (
        setting("inputs", 0, "shape", 1, to=-3),
        r"inputs\[0\]\.shape\[1\]: expected an integer in .*, got -3",
    ),
    "shape": (
        setting("outputs", 0, "shape", to=None),
        r"outputs\[0\]\.shape: expected an array of 0 to 16 items",
    ),
    "binding-name": (
        setting("outputs", 0, "name", to=""),
        r"outputs\[0\]\.name: expected a string of 1 to 1024",
    ),
    "input-size": (
        setting("source", "input_size", to=[480]),
        r"source\.input_size: expected an array of 2 items",
    ),
    "input-size-huge": (
        setting("source", "input_size", to=[480, 10**6]),
        r"source\.input_size\[1\]: expected an integer in \[1, 16384\], got 1000000",
    ),
    "weights-sha": (
        setting("source", "weights_sha256", to="xyz"),
        r"source\.weights_sha256: expected a string .*\[0-9a-f\]",
    ),
    "source-extra": (setting("source", "config", to={}), r"source: unknown field\(s\) \['config'\]"),
    "member-name": (
        setting("members", "../evil", to="ab" * 32),
        r"members field name: expected a string of 1 to 128 characters matching .*, got '\.\./evil'",
    ),
    "member-sha": (
        setting("members", "model.onnx", to="AB" * 32),
        r"members\.model\.onnx: expected a string",
    ),
    "version-type": (setting("edgevision_version", to=1), r"edgevision_version: expected a string"),
    "extra-field": (setting("comment", to="hi"), r"the root: unknown field\(s\) \['comment'\]"),
    "missing-field": (dropping("outputs"), r"the root: the field 'outputs' is missing"),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_a_bad_manifest_value_is_named_in_one_line(tmp_path: Path, case: str) -> None:
    change, message = BAD_MANIFESTS[case]

    def edit(members: dict[str, bytes]) -> dict[str, bytes]:
        manifest = json.loads(members["manifest.json"])
        change(manifest)
        return {**members, "manifest.json": json.dumps(manifest).encode()}

    path = write_plan(tmp_path / "plan.plan", full_plan())
    rewrite(path, edit)
    with pytest.raises(
        PlanFileError, match=rf"^malformed manifest\.json in .*plan\.plan: {message}"
    ) as raised:
        read_plan(path)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (
            Binding("image", "float32", (1, 3, 8, 8), {"channel_order": "BGR", "mean": None}),
            r"^inputs\[0\]\.preprocessing\.mean: expected an array of 3 items, got None$",
        ),
        (
            Binding(
                "image",
                "float32",
                (1, 3, 8, 8),
                {"channel_order": "BGR", "mean": [0, 0, 0], "std": [1, -1, 1]},
            ),
            r"^inputs\[0\]\.preprocessing\.std\[1\]: expected a finite positive number, got -1$",
        ),
        (Binding("image", "complex64", (1, 3, 8, 8)), r"^inputs\[0\]\.dtype: expected one of"),
    ],
)
def test_a_plan_outside_the_schema_is_not_written(tmp_path: Path, binding: Binding, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        write_plan(tmp_path / "bad.plan", replace(full_plan(), inputs=(binding,)))
    assert not list(tmp_path.iterdir()), "a refused plan left a file"


def test_every_choice_the_engine_makes_is_in_the_schema(tmp_path: Path) -> None:
    # Each value the schema's choices allow round-trips: no choice refuses what the code writes.
    for level in ("basic", "extended", "all"):
        for backend in ("ort", "openvino", "tensorrt"):
            tactic = {**full_plan().tactics["session"], "backend": backend, "graph_optimization_level": level}
            plan = replace(full_plan(), tactics={"session": tactic})
            assert read_plan(write_plan(tmp_path / "p.plan", plan)).tactics["session"] == tactic


def test_schema_nodes_check_what_they_say() -> None:
    shape = Array(Either((Integer(0, 9), Text(8))), 1, 2)
    shape.check([3, "height"], "shape")
    with pytest.raises(
        SchemaError, match=r"^shape\[1\]: expected an integer in \[0, 9\] or a string of 1 to 8"
    ):
        shape.check([3, 10], "shape")
    with pytest.raises(SchemaError, match=r"^x: expected a finite number, got inf$"):
        Number().check(float("inf"), "x")
    with pytest.raises(SchemaError, match=r"^x: expected an integer in \[0, 9\], got False$"):
        Integer(0, 9).check(False, "x")
    with pytest.raises(SchemaError, match=r"^t\.k: expected an integer"):
        Table(Text(8), Integer(0, 9)).check({"k": "v"}, "t")
    Record({"a": Integer(0, 1)}, or_empty=True).check({}, "r")
    with pytest.raises(SchemaError, match=r"^r: the field 'a' is missing$"):
        Record({"a": Integer(0, 1)}).check({}, "r")
    with pytest.raises(SchemaError, match=r"got '" + "x" * 56 + r"\.\.\.$"):
        Text(8).check("x" * 1000, "s")  # a long value is quoted in part
