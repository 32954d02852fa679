"""``edgevision search``, ``search-report`` and ``search-train``: every bad input is one line,
exit 2, checked before any patch set is built or Ray starts, and nothing is written."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from edgevision.layers.nas_ops import Genotype
from edgevision.models.nasnet import NASNET_A


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--space", "darts"], ["unknown search space 'darts'", "nasnet, amoeba"]),
        (["--algo", "bayes"], ["unknown search algorithm 'bayes'", "evolution"]),
        (["--budget", "0"], ["--budget"]),
        (["--workers", "0"], ["--workers"]),
        (["--latency-target", "nan"], ["--latency-target"]),
        (["--latency-target", "-3"], ["--latency-target"]),
        (["--population", "1"], ["population"]),
        (["--trial-timeout", "inf"], ["--trial-timeout"]),
        (["--sample", "60"], ["sample"]),
        (["--algo", "rl", "--rl-batch", "0"], ["batch"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--train-patches", "1"], ["--train-patches"]),
        (["--latency-weight", "1"], ["--latency-weight"]),
        (["--address", "nowhere"], ["address 'nowhere' must be host:port"]),
        (["--latency-model", "m.json"], ["--latency-model needs --latency-target"]),
        (["--latency-target", "5", "--latency-model", "absent.json"], ["absent.json"]),
    ],
)
def test_bad_options_are_refused_before_any_work(
    run_cli, assert_one_line_error, tmp_path: Path, args: list[str], words: list[str]
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    code, _, err = run_cli("search", *args, "--out", str(out), "--cache", str(cache))
    assert_one_line_error(code, err, *words)
    assert not out.exists() and not cache.exists()


def test_an_unreachable_ray_address_is_refused(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    out, cache = tmp_path / "run", tmp_path / "cache"
    code, _, err = run_cli("search", "--address", address, "--out", str(out), "--cache", str(cache))
    assert_one_line_error(code, err, "cannot reach the Ray cluster", address)
    assert not out.exists() and not cache.exists()


def write_genotype(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda g: g["normal"]["blocks"][0]["ops"].__setitem__(0, "conv_9x9"), ["unknown ops", "conv_9x9"]),
        (lambda g: g["reduction"]["blocks"][2].pop("inputs"), ["reduction", "inputs"]),
        (lambda g: g["normal"]["blocks"][1].__setitem__("inputs", [0, 9]), ["normal", "block 1"]),
        (lambda g: g.pop("normal"), ["normal"]),
    ],
)
def test_search_train_refuses_bad_genotype_files(
    run_cli, assert_one_line_error, tmp_path: Path, edit, words: list[str]
) -> None:
    data = NASNET_A.to_dict()
    edit(data)
    path = write_genotype(tmp_path / "g.json", data)
    out = tmp_path / "trained"
    code, _, err = run_cli("search-train", str(path), "--out", str(out))
    assert_one_line_error(code, err, str(path), *words)
    assert not out.exists()


def test_search_train_refuses_a_file_that_is_not_json(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("{normal: ")
    code, _, err = run_cli("search-train", str(path), "--out", str(tmp_path / "trained"))
    assert_one_line_error(code, err, str(path))


def test_search_report_refuses_a_folder_without_a_log(run_cli, assert_one_line_error, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    code, _, err = run_cli("search-report", str(tmp_path / "run"), "--out", str(tmp_path / "c.png"))
    assert_one_line_error(code, err, "no trials.jsonl")
    assert not (tmp_path / "c.png").exists()


def test_published_genotype_still_parses() -> None:
    # The fixtures above edit this dict; it must be a valid genotype before the edit.
    assert Genotype.from_dict(NASNET_A.to_dict()) == NASNET_A


@pytest.fixture(scope="module")
def patch_cache(data_dir: Path, tmp_path_factory) -> Path:
    """Both patch caches a search reads, cut from 12 dev-val images (the real WIDER subset) with
    the default options, so the command takes them instead of cutting the whole data set."""
    from dataclasses import replace

    from edgevision.data.face_patches import PatchOptions, build_face_patches, save_face_patches
    from edgevision.data.widerface import load_split

    root = data_dir / "widerface"
    if not root.is_dir():
        pytest.skip(f"WIDER FACE subset not found at {root}")
    split = load_split(root, "val")
    patches = build_face_patches(replace(split, records=split.records[:12]), PatchOptions())
    cache = tmp_path_factory.mktemp("cache")
    for name in ("train", "val"):
        save_face_patches(patches, cache / f"face_patches_{name}_32px_seed0.npz")
    return cache


@pytest.mark.xdist_group("ray")  # it starts a Ray (see tests/search/test_runner.py)
def test_a_search_runs_writes_its_folder_and_resumes(run_cli, patch_cache: Path, tmp_path: Path) -> None:
    import json

    from edgevision.search.cell_space import get_space
    from edgevision.search.genotype_file import load_genotype

    out = tmp_path / "run"
    small = ["--epochs", "1", "--train-patches", "32", "--val-patches", "32", "--cache", str(patch_cache)]
    code, stdout, _ = run_cli("search", "--algo", "random", "--budget", "3", "--out", str(out), *small)
    assert code in (0, None)
    lines = (out / "trials.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert json.loads(lines[0])["config"]["task"]["train_size"] == 32
    best = max((r for r in records if r["status"] == "ok"), key=lambda r: r["reward"])
    # The saved genotype is the best trial's, and it belongs to the space searched.
    space = get_space("nasnet")
    assert space.to_json(load_genotype(out / "best_genotype.json", space)) == best["arch"]
    assert f"best #{best['index']}" in stdout
    assert (out / "best_so_far.png").stat().st_size > 0

    # The same command with a larger budget resumes: the three trials stay as they were.
    code, _, _ = run_cli("search", "--algo", "random", "--budget", "4", "--out", str(out), *small)
    assert code in (0, None)
    again = (out / "trials.jsonl").read_text().splitlines()
    assert again[:4] == lines and len(again) == 5
    # Another algorithm in the same folder is another search: refused, naming the key, before any
    # patch set is cut (this cache folder stays empty).
    unused = tmp_path / "unused-cache"
    code, _, err = run_cli(
        "search", "--algo", "evolution", "--budget", "5", "--out", str(out), "--cache", str(unused)
    )
    assert code == 2 and "its algo is 'random'" in err
    assert not unused.exists()


def test_search_train_trains_a_genotype_that_create_model_loads(
    run_cli, patch_cache: Path, tmp_path: Path
) -> None:
    import json

    import torch

    from edgevision.models import create_model
    from edgevision.models.nasnet import NASNET_A

    path = write_genotype(tmp_path / "g.json", NASNET_A.to_dict())
    out = tmp_path / "trained"
    args = [
        "--cells",
        "1",
        "--filters",
        "4",
        "--epochs",
        "1",
        "--input-size",
        "16",
        "--cache",
        str(patch_cache),
    ]
    code, stdout, _ = run_cli("search-train", str(path), "--out", str(out), *args)
    assert code in (0, None)
    result = json.loads((out / "result.json").read_text())
    assert 0.0 <= result["accuracy"] <= 1.0 and f"validation accuracy {result['accuracy']:.4f}" in stdout
    model = create_model(
        "nasnet",
        weights=out / "model.pth",
        genotype=result["genotype"],
        num_cells=result["cells"],
        filters=result["filters"],
    )
    assert sum(p.numel() for p in model.parameters()) == result["params"]
    # The weights are the trained ones, not a fresh initialisation.
    fresh = create_model("nasnet", genotype=result["genotype"], num_cells=1, filters=4)
    assert not torch.equal(model.classifier[-1].weight, fresh.classifier[-1].weight)
