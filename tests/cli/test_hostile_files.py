"""Every command against crafted and broken files, each in a fresh process as a user runs it: a
one-line error and exit 2, no traceback, nothing written, and the process's peak memory bounded
(a zip bomb, a PNG claiming 60000x60000 pixels and the like must be refused before they cost
memory)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from onnx import TensorProto, helper

from edgevision.deploy.plan import Binding, Plan, write_plan

pytestmark = pytest.mark.slow

PEAK_MIB = 1536  # these runs peak at 0.77-1.03 GiB here (torch's import; build adds onnx's)
BOMB_MIB = 1000  # the crafted plan's model expands to this (1 MiB on disk), under the model's bound

# Runs the CLI in this process and records its peak resident memory, however it ends: VmHWM (KiB)
# belongs to the process's own address space, unlike ru_maxrss, which a forked child inherits
# from its parent (here a pytest process of 1.5 GB).
RUNNER = """
import runpy, sys
report, sys.argv = sys.argv[1], ["edgevision", *sys.argv[2:]]
try:
    runpy.run_module("edgevision.cli", run_name="__main__")
finally:
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    open(report, "w").write(peak.split()[1])
"""


def run(tmp_path: Path, *args: str) -> tuple[int, str, float]:
    """``edgevision *args`` in a fresh process: exit code, stderr, peak memory in MiB."""
    report = tmp_path / "peak.txt"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(report), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    return done.returncode, done.stderr, int(report.read_text()) / 1024


def relu_plan(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["out"])],
        "relu",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, "height", "width"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    prep = {"channel_order": "BGR", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "pixels": False}
    inputs = (Binding("image", "float32", (1, 3, "height", "width"), prep),)
    return write_plan(
        path, Plan(model, "fp32", inputs, (Binding("out", "float32", (1, 3, "height", "width")),))
    )


def zip_bomb(path: Path) -> Path:
    """A plan-shaped zip whose model member is BOMB_MIB of zeros, streamed in (never held)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps({"format": "edgevision-plan", "format_version": 1}))
        with archive.open("model.onnx", "w") as handle:
            for _ in range(BOMB_MIB):
                handle.write(bytes(1 << 20))
    return path


def null_mean_plan(path: Path) -> Path:
    """A valid plan whose manifest says ``mean: null`` (the manifest's own digest is not listed)."""
    relu_plan(path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["inputs"][0]["preprocessing"]["mean"] = None
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def nan_weights(path: Path) -> Path:
    from edgevision.models import create_model

    state = create_model("faceboxes").state_dict()
    state["conv1.conv.weight"][0, 0, 0, 0] = math.nan
    torch.save(state, path)
    return path


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def non_utf8(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() + b"\xff\xfe caf\xe9\n")
    return path


def wider_root(root: Path, data_dir: Path) -> Path:
    """A WIDER FACE root with the real ground truth and a val annotation file that is not UTF-8."""
    (root / "eval_tools").mkdir(parents=True)
    (root / "WIDER_val" / "images" / "4--Dancing").mkdir(parents=True)
    (root / "eval_tools" / "ground_truth").symlink_to(data_dir / "widerface" / "eval_tools" / "ground_truth")
    non_utf8(root / "wider_face_split" / "wider_face_val_bbx_gt.txt", "4--Dancing/x.jpg\n1\n")
    return root


def openimages_folder(folder: Path) -> Path:
    """A class list and a box file whose second row is not UTF-8."""
    folder.mkdir()
    (folder / "class-descriptions-boxable.csv").write_text("/m/0dzct,Human face\n")
    header = "ImageID,LabelName,Confidence,XMin,XMax,YMin,YMax,ClassName\n"
    non_utf8(folder / "subset-train-annotations-bbox.csv", header)
    return folder


Case = Callable[[Path, Path, Callable[[int, int], Path], Path], tuple[list[str], str]]

CASES: dict[str, Case] = {
    "detect: a PNG claiming 60000x60000": lambda t, photo, png, data: (
        ["detect", str(png(60000, 60000)), "--strict"],
        "60000x60000",
    ),
    "run: a zip bomb as the plan": lambda t, photo, png, data: (
        ["run", str(zip_bomb(t / "bomb.plan")), str(photo)],
        "a compressed bomb",
    ),
    "detect: a zip bomb as --model": lambda t, photo, png, data: (
        ["detect", str(photo), "--model", str(zip_bomb(t / "bomb.plan"))],
        "a compressed bomb",
    ),
    "run: a manifest with mean null": lambda t, photo, png, data: (
        ["run", str(null_mean_plan(t / "null.plan")), str(photo)],
        "mean",
    ),
    "detect: NaN weights": lambda t, photo, png, data: (
        ["detect", str(photo), "--weights", str(nan_weights(t / "nan.pth"))],
        "NaN",
    ),
    "detect: a text file as weights": lambda t, photo, png, data: (
        ["detect", str(photo), "--weights", str(non_utf8(t / "w.pth", "weights"))],
        "not a PyTorch weights file",
    ),
    "detect: an empty weights file": lambda t, photo, png, data: (
        ["detect", str(photo), "--weights", str(empty(t / "e.pth"))],
        "empty",
    ),
    "build: --input-size 20000x20000": lambda t, photo, png, data: (
        ["build", "faceboxes", "-o", str(t / "out" / "x.plan"), "--input-size", "20000x20000"],
        "20000",
    ),
    "build: a calibration folder of one non-image": lambda t, photo, png, data: (
        [
            "build",
            "faceboxes",
            "-o",
            str(t / "out" / "x.plan"),
            "--precision",
            "int8",
            "--calib",
            str(non_utf8(t / "calib" / "a.jpg", "jpeg").parent),
        ],  # fmt: skip
        "a.jpg",
    ),
    "eval: a WIDER annotation file that is not UTF-8": lambda t, photo, png, data: (
        [
            "eval",
            "widerface",
            "--out",
            str(t / "out"),
            "--data",
            str(wider_root(t / "wider", data)),
        ],  # fmt: skip
        "UTF-8",
    ),
    "data stats: a box file that is not UTF-8": lambda t, photo, png, data: (
        [
            "data",
            "stats",
            "openimages",
            "--out",
            str(t / "out" / "s.png"),
            "--data",
            str(openimages_folder(t / "oi")),
        ],  # fmt: skip
        "UTF-8",
    ),
    "train: --lr nan": lambda t, photo, png, data: (
        ["train", "faceboxes", "--out", str(t / "out"), "--lr", "nan", "--data", str(t / "none")],
        "lr",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_one_line_in_bounded_memory(
    case: str,
    tmp_path: Path,
    astronaut_path: Path,
    header_only_png: Callable[[int, int], Path],
    data_dir: Path,
) -> None:
    args, word = CASES[case](tmp_path, astronaut_path, header_only_png, data_dir)
    code, err, peak_mib = run(tmp_path, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert word in lines[0], err
    assert peak_mib < PEAK_MIB, f"{case}: peak {peak_mib:.0f} MiB"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*")), "something was written"


def test_the_bomb_is_what_it_claims(tmp_path: Path) -> None:
    """The crafted plan is small on disk and expands to BOMB_MIB: read whole, on top of the ~750
    MiB torch takes, it would break the memory bound above."""
    path = zip_bomb(tmp_path / "bomb.plan")
    assert path.stat().st_size < 4 << 20
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("model.onnx").file_size == BOMB_MIB << 20 > (PEAK_MIB - 750) << 20
