"""What each plan precision and input format costs and keeps: FaceBoxes plans at 640x480.

For the fp32, fp16, int8 and int8 pixel-input plans of the bundled FaceBoxes (int8: entropy
calibration on ``--calibration-images`` WIDER *train* images): the plan file's size, the median
forward time on ONNX Runtime (1 thread, the plans timed in rotation, each fed the same photo as its
binding takes it) and the WIDER val subset AP with the official protocol through
``load_detector(plan)``. About 1 minute on 2 cores.

    python benchmarks/engine_precisions.py --out /tmp/engine_precisions
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from _machine import cpu_name, set_threads  # benchmarks/_machine.py
from engine_int8 import SUBSETS, VGA, build_plans, markdown, say, timed_rotation

from edgevision import load_detector
from edgevision.data.io import read_image
from edgevision.data.paths import default_data_dir
from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.calibration import ImageFolderBatches
from edgevision.deploy.runtime import load_engine
from edgevision.evaluation.widerface_predict import run_widerface

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = default_data_dir(REPO_ROOT)
PLANS = {  # label -> (precision, calibrator, pixel input)
    "fp32": ("fp32", "entropy", False),
    "fp16": ("fp16", "entropy", False),
    "int8": ("int8", "entropy", False),
    "int8, pixel input": ("int8", "entropy", True),
}


def main(
    data: Annotated[Path, typer.Option(help="Data root (WIDER FACE under widerface/).")] = DATA_DIR,
    calibration_images: Annotated[int, typer.Option(min=1, help="WIDER train images to calibrate on.")] = 64,
    repeats: Annotated[int, typer.Option(min=1, help="Timed rounds.")] = 30,
    out: Annotated[Path, typer.Option(help="Folder for the plans and results.")] = Path(
        "out/engine_precisions"
    ),
) -> None:
    widerface = data / "widerface"
    train = widerface / "WIDER_train" / "images"
    out.mkdir(parents=True, exist_ok=True)
    set_threads(1)
    paths, _ = build_plans("faceboxes", None, VGA, train, calibration_images, out, PLANS)
    engines = {label: load_engine(path, threads=1) for label, path in paths.items()}
    photo = read_image(
        ImageFolderBatches(widerface / "WIDER_val" / "images", "x", VGA, Preprocessing()).paths[0]
    )
    feeds = {label: engine.preprocessing.apply(photo, VGA)[None] for label, engine in engines.items()}
    times = timed_rotation(
        {label: (lambda e=engine, x=feeds[label]: e.run(x)) for label, engine in engines.items()}, repeats, 3
    )
    rows, results = [], {"machine": cpu_name(), "plans": {}}
    for label, path in paths.items():
        say(f"WIDER val: {label}")
        ap = run_widerface(load_detector(str(path)), widerface, out / "predictions" / label).ap
        figures = {
            "bytes": path.stat().st_size,
            "median_ms": times[label]["median_ms"],
            "ap": {subset: float(ap[subset]) for subset in SUBSETS},
        }
        results["plans"][label] = figures
        rows.append(
            [
                label,
                f"{figures['bytes'] / 1e6:.2f}",
                f"{figures['median_ms']:.2f}",
                " / ".join(f"{figures['ap'][s]:.4f}" for s in SUBSETS),
            ]
        )
    table = markdown(
        ["FaceBoxes 640x480 plan", "file MB", "median ms, ORT, 1 thread", "AP easy / medium / hard"], rows
    )
    print(table)
    (out / "engine_precisions.json").write_text(json.dumps(results, indent=1))
    (out / "engine_precisions.md").write_text(table + "\n")


if __name__ == "__main__":
    typer.run(main)
