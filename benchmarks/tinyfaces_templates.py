"""Tiny Faces' templates: k-medians (1 - IoU) over the WIDER FACE train faces, each face first
brought to the pyramid scale that finds it (0.5 / 1 / 2x, the paper's rule), printed as the
``(w, h)`` tuple that ``edgevision.models.tinyfaces.WIDER_TEMPLATES`` holds, with the mean best
IoU of the faces to them (also for one template and for the faces at their own size).

    python benchmarks/tinyfaces_templates.py [--data ../shared/data/widerface] [--count 8]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edgevision.data.paths import default_data_dir
from edgevision.data.widerface import load_split
from edgevision.models.tinyfaces import TinyFacesConfig, assigned_scale, centred_iou, cluster_templates

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root")] = None,
    count: Annotated[int, typer.Option(help="templates")] = 8,
) -> None:
    split = load_split(data or default_data_dir(REPO_ROOT) / "widerface", "train")
    sizes = np.concatenate([r.boxes[r.valid][:, 2:] - r.boxes[r.valid][:, :2] for r in split.records])
    sizes = sizes[(sizes > 0).all(axis=1)].astype(np.float64)
    pyramid = TinyFacesConfig().test_scales
    at_scale = np.array([assigned_scale(float(h), pyramid) for h in sizes[:, 1]])
    scaled = sizes * at_scale[:, None]
    templates = cluster_templates(scaled, count)
    print(
        f"{len(sizes)} faces; heights at their pyramid scale: "
        f"5/50/95th percentile {np.percentile(scaled[:, 1], [5, 50, 95]).round(1).tolist()}"
    )
    print("templates (w, h):", [tuple(float(v) for v in row) for row in np.round(templates)])
    for name, faces in (("faces at their pyramid scale", scaled), ("faces at their own size", sizes)):
        for k in sorted({1, count}):
            fit = centred_iou(faces, cluster_templates(faces, k)).max(axis=1).mean()
            print(f"mean best IoU, {name}, {k} template(s): {fit:.3f}")


if __name__ == "__main__":
    typer.run(main)
