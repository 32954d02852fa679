"""Where MobileNetV2's INT8 top-1 flips come from: each error source of the int8 plan switched on alone.

The int8 plan (percentile calibration on 64 WIDER *train* images) is run as its Q/DQ graph in float
(ONNX Runtime with graph optimisation off, so nothing is fused) with parts of the quantisation
replaced: activation Q/DQ pairs by a ``Clip`` to the same range (clipping without rounding), weight
dequantisers by the fp32 weights. Its top-1 is compared with the fp32 plan's on held-out WIDER train
photos (every third image not calibrated on, ``--photos`` of them), beside the plan itself on ONNX
Runtime's fused kernels and the plan built with ``--bias-correction``. About 1.5 minutes on 2 cores.

    python benchmarks/int8_error_sources.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import onnx
import onnxruntime as ort
import typer
from engine_int8 import IMAGENET, build_plans, markdown, say
from onnx import helper, numpy_helper

from edgevision.data.io import read_image
from edgevision.data.paths import default_data_dir
from edgevision.data.preprocessing import IMAGENET_RGB
from edgevision.deploy.builder import BuildOptions, build_engine
from edgevision.deploy.calibration import ImageFolderBatches
from edgevision.deploy.plan import read_plan
from edgevision.deploy.runtime import load_engine

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = default_data_dir(REPO_ROOT)
CALIBRATION_IMAGES = 64


def simulated(
    qdq: onnx.ModelProto, fp32: onnx.ModelProto, round_activations: bool, int8_weights: bool
) -> onnx.ModelProto:
    """``qdq`` with its activation Q/DQ pairs kept (``round_activations``) or replaced by a ``Clip``
    to their range, and its weight dequantisers kept (``int8_weights``) or replaced by fp32 weights."""
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    graph = model.graph
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    floats = {init.name: numpy_helper.to_array(init) for init in fp32.graph.initializer}
    writers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        source = node.input[0]
        if source in values and not int8_weights:  # a weight or bias: its fp32 value
            original = source.removesuffix("_quantized")
            graph.initializer.append(numpy_helper.from_array(floats[original], f"{original}_fp32"))
            node.CopyFrom(helper.make_node("Identity", [f"{original}_fp32"], list(node.output)))
        elif source in writers and writers[source].op_type == "QuantizeLinear" and not round_activations:
            quantizer = writers[source]
            scale, zero = float(values[quantizer.input[1]]), values[quantizer.input[2]]
            info = np.iinfo(zero.dtype)
            bounds = [(info.min - float(zero)) * scale, (info.max - float(zero)) * scale]
            names = [f"{node.output[0]}_low", f"{node.output[0]}_high"]
            graph.initializer.extend(numpy_helper.from_array(np.float32(b), n) for b, n in zip(bounds, names))
            node.CopyFrom(helper.make_node("Clip", [quantizer.input[0], *names], list(node.output)))
    return model


def top1(model: onnx.ModelProto, photos: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run(None, {name: photos[i : i + 50]})[0].argmax(1) for i in range(0, len(photos), 50)]
    )


def main(
    data: Annotated[Path, typer.Option(help="Data root (WIDER FACE, weights/).")] = DATA_DIR,
    photos: Annotated[int, typer.Option(min=10, help="Held-out WIDER train photos.")] = 300,
    out: Annotated[Path, typer.Option(help="Folder for the plans.")] = Path("out/int8_error_sources"),
) -> None:
    train = data / "widerface" / "WIDER_train" / "images"
    weights = data / "weights" / "mobilenet_v2_imagenet" / "mobilenet_v2-b0353104.pth"
    builds = {"fp32": ("fp32", "percentile", False), "int8": ("int8", "percentile", False)}
    paths, _ = build_plans("mobilenet_v2", weights, IMAGENET, train, CALIBRATION_IMAGES, out, builds)
    corrected = out / "mobilenet_v2_int8_bias_corrected.plan"
    options = BuildOptions("int8", train, calibrator="percentile", input_size=IMAGENET, bias_correction=True)
    build_engine("mobilenet_v2", corrected, options, weights=weights)
    taken = set(ImageFolderBatches(train, "x", IMAGENET, IMAGENET_RGB, limit=CALIBRATION_IMAGES).paths)
    held_out = [p for p in ImageFolderBatches(train, "x", IMAGENET, IMAGENET_RGB).paths if p not in taken][
        ::3
    ][:photos]
    x = np.stack([IMAGENET_RGB.apply(read_image(path), IMAGENET) for path in held_out])
    say(f"{len(x)} held-out photos")
    fp32 = onnx.load_from_string(read_plan(paths["fp32"]).model)
    qdq = onnx.load_from_string(read_plan(paths["int8"]).model)
    reference = top1(fp32, x)
    rows = []
    for label, rounding, int8_weights in (
        ("activations clipped to their ranges only (no rounding), fp32 weights", False, False),
        ("activations rounded to 8 bits, fp32 weights", True, False),
        ("activations clipped only, int8 per-channel weights", False, True),
        ("everything (the int8 plan, simulated)", True, True),
    ):
        rows.append(
            [
                label,
                f"{100 * (top1(simulated(qdq, fp32, rounding, int8_weights), x) == reference).mean():.1f}",
            ]
        )
    for label, path in (
        ("the int8 plan on ONNX Runtime's fused kernels", paths["int8"]),
        ("... with --bias-correction", corrected),
    ):
        engine = load_engine(path, threads=1)
        predicted = np.concatenate(
            [next(iter(engine.run(x[i : i + 50]).values())).argmax(1) for i in range(0, len(x), 50)]
        )
        rows.append([label, f"{100 * (predicted == reference).mean():.1f}"])
    print(markdown(["what is quantised", "top-1 agreement with the fp32 plan, %"], rows))


if __name__ == "__main__":
    typer.run(main)
