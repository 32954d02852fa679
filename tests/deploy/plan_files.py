"""Plans for the plan-file tests: a tiny real model, a plan that uses every field, and ways to
rewrite a plan's zip behind :func:`write_plan`'s back (as an editor or an attacker would)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

from onnx import TensorProto, helper

from edgevision.deploy.plan import Binding, Plan, Plugin

Members = dict[str, bytes]


def relu_model(output: str = "out") -> bytes:
    """A one-node ONNX model ``image (1, 3, H, W) -> output``, serialized."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], [output])],
        "relu",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 3, "height", "width"])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def session_tactic(threads: int = 1) -> dict[str, object]:
    """A tuned plan's session tactic, as the builder records it."""
    return {
        "backend": "ort",
        "precision": "int8",
        "per_channel": True,
        "threads": threads,
        "graph_optimization_level": "all",
    }


def full_plan() -> Plan:
    """A plan with every field and member set, as the builder would write it."""
    return Plan(
        model=relu_model(),
        precision="int8",
        inputs=(
            Binding(
                "image",
                "float32",
                (1, 3, "height", "width"),
                {
                    "channel_order": "BGR",
                    "mean": [104.0, 117.0, 123.0],
                    "std": [1.0, 1.0, 1.0],
                    "pixels": False,
                },
            ),
        ),
        outputs=(Binding("out", "float32", (1, 3, "height", "width")),),
        calibration_method="entropy",
        calibration=b'{"image": [0.0, 255.0]}',
        tactics={"session": session_tactic(), "passes": ["fold_constants"], "fp32_layers": ["conv1"]},
        source={
            "model": "faceboxes",
            "weights": "w.pth",
            "weights_sha256": "ab" * 32,
            "input_size": [480, 640],
        },
        plugins=(Plugin("edgevision", "CReLU", 1),),
        extras={"timing_cache.json": b"{}"},
    )


def members_of(path: Path) -> Members:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(path: Path, change: Callable[[Members], Members]) -> None:
    """Rewrite the zip ``path`` with its members changed by ``change``, bypassing the checksums."""
    members = change(members_of(path))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def with_digests(members: Members) -> Members:
    """``members`` with the manifest's sha256 list made to match them: what whoever edits a plan
    on purpose does before zipping it again."""
    manifest = json.loads(members["manifest.json"])
    listed = {name for name in members if name not in ("manifest.json", "signature.json")}
    manifest["members"] = {name: hashlib.sha256(members[name]).hexdigest() for name in sorted(listed)}
    return {**members, "manifest.json": json.dumps(manifest).encode()}


def manifest_with(**fields: object) -> Callable[[Members], Members]:
    """A change that sets top-level manifest ``fields``."""

    def change(members: Members) -> Members:
        manifest = json.loads(members["manifest.json"])
        return {**members, "manifest.json": json.dumps({**manifest, **fields}).encode()}

    return change
