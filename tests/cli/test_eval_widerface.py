"""``edgevision eval widerface`` end to end on a 3-image WIDER root built from the real data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

VAL_GT = Path("wider_face_split") / "wider_face_val_bbx_gt.txt"


def annotation_blocks(path: Path) -> dict[str, str]:
    """Image name -> its block of the official text file, verbatim (name, n, max(n, 1) rows)."""
    lines = path.read_text().splitlines(keepends=True)
    blocks, start = {}, 0
    while start < len(lines):
        end = start + 2 + max(int(lines[start + 1]), 1)
        blocks[lines[start].strip()] = "".join(lines[start:end])
        start = end
    return blocks


@pytest.fixture(scope="module")
def tiny_root(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WIDER FACE root holding the first val image of each of three events, their annotation
    blocks, and the real ``eval_tools/ground_truth`` (all 3,226 val images)."""
    real = data_dir / "widerface"
    if not (real / VAL_GT).is_file() or not (real / "eval_tools" / "ground_truth").is_dir():
        pytest.skip(f"WIDER FACE val annotations or eval_tools not found under {real}")
    first_of_event: dict[str, tuple[str, str]] = {}
    for name, block in annotation_blocks(real / VAL_GT).items():
        first_of_event.setdefault(name.split("/")[0], (name, block))
    blocks = dict(list(first_of_event.values())[:3])
    root = tmp_path_factory.mktemp("widerface")
    for name in blocks:
        target = root / "WIDER_val" / "images" / name
        target.parent.mkdir(parents=True)
        shutil.copy(real / "WIDER_val" / "images" / name, target)
    (root / VAL_GT).parent.mkdir()
    (root / VAL_GT).write_text("".join(blocks.values()))
    (root / "eval_tools").mkdir()
    (root / "eval_tools" / "ground_truth").symlink_to(real / "eval_tools" / "ground_truth")
    return root


def test_eval_on_a_val_subset(run_cli, tmp_path: Path, tiny_root: Path, reference_weights: Path) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        "eval", "widerface", "--weights", str(reference_weights), "--data", str(tiny_root), "--out", str(out)
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["ap"]) == {"easy", "medium", "hard"}
    assert all(isinstance(ap, float) and 0.0 <= ap <= 1.0 for ap in results["ap"].values()), results["ap"]
    assert results["set"] == "WIDER val subset (3 of 3226 images)"
    assert "WIDER val subset (3 of 3226 images)" in stdout
    assert (out / "pr_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    predictions = [p for p in (out / "predictions").rglob("*") if p.is_file()]
    assert len(predictions) == 3, predictions


def test_scale_must_be_positive(
    run_cli, assert_one_line_error, tmp_path: Path, tiny_root: Path, reference_weights: Path
) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(
        "eval",
        "widerface",
        "--weights",
        str(reference_weights),
        "--data",
        str(tiny_root),
        "--out",
        str(out),
        "--scale",
        "0",
    )
    assert_one_line_error(code, err, "--scale")
    assert not out.exists()
