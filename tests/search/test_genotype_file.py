"""Genotype files: the published genotypes round-trip through JSON with their concats, and every
kind of bad file is a one-line error naming the file and what is wrong, before anything builds."""

from __future__ import annotations

import json
import random

import pytest

from edgevision.errors import ConfigError, InputFileError
from edgevision.layers.nas_ops import Genotype
from edgevision.models.amoebanet import AMOEBANET_A
from edgevision.models.nasnet import NASNET_A
from edgevision.search.cell_space import SPACES
from edgevision.search.genotype_file import load_genotype, save_genotype


@pytest.mark.parametrize(("genotype", "space"), [(NASNET_A, "nasnet"), (AMOEBANET_A, "amoeba")])
def test_published_genotypes_round_trip(tmp_path, genotype, space):
    path = save_genotype(genotype, tmp_path / "cells.json", SPACES[space])
    assert load_genotype(path) == genotype
    assert load_genotype(path, SPACES[space]) == genotype
    # Plain JSON a person can read and edit: the concat as published, not the loose ends.
    data = json.loads(path.read_text())
    assert data["normal"]["concat"] == list(genotype.normal.concat)
    assert data["reduction"]["blocks"][0]["ops"] == list(genotype.reduction.blocks[0].ops)


def test_sampled_genotypes_round_trip(tmp_path):
    rng = random.Random(0)
    for space in SPACES.values():
        for _ in range(20):
            genotype = space.sample(rng)
            assert load_genotype(save_genotype(genotype, tmp_path / "g.json"), space) == genotype


def write(tmp_path, data) -> str:
    path = tmp_path / "cells.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def edited(edit) -> dict:
    data = NASNET_A.to_dict()
    edit(data)
    return data


def assert_one_line(error: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError) as error:
        load_genotype(tmp_path / "none.json")
    assert_one_line(error, "genotype file not found", "none.json")


@pytest.mark.parametrize("text", ["", "{'normal': 1}", '{"normal": ', "\xff"])
def test_not_json(tmp_path, text):
    path = tmp_path / "cells.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputFileError) as error:
        load_genotype(path)
    assert_one_line(error, f"genotype file {path} is not JSON")


def _set(path: tuple, value):
    def edit(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "parts"),
    [
        (lambda d: d.pop("reduction"), ["genotype lacks reduction"]),
        (lambda d: d["normal"].pop("concat"), ["normal cell lacks concat"]),
        (lambda d: d["normal"]["blocks"][1].pop("ops"), ["normal cell block 1 lacks ops"]),
        (_set(("normal", "blocks", 0, "input"), [0, 1]), ["normal cell block 0 has unknown keys ['input']"]),
        (_set(("normal", "blocks"), {"0": 1}), ["normal cell: blocks must be a list"]),
        (_set(("reduction", "blocks", 2), [0, 1]), ["reduction cell block 2 must be an object"]),
        (
            _set(("normal", "blocks", 3, "inputs"), ["0", 1]),
            ["normal cell block 3 inputs must be a list of integers, got ['0', 1]"],
        ),
        (_set(("normal", "blocks", 3, "inputs"), [0, 1.5]), ["inputs must be a list of integers"]),
        (_set(("normal", "blocks", 3, "inputs"), [True, 0]), ["inputs must be a list of integers"]),
        (
            _set(("normal", "blocks", 3, "ops"), "identity"),
            ["normal cell block 3 ops must be a list of strings"],
        ),
        (_set(("normal", "blocks", 0, "ops"), ["identity"]), ["block 0 ops must have 2 entries, got 1"]),
        (_set(("normal", "blocks", 0, "inputs"), [0, 1, 1]), ["block 0 inputs must have 2 entries, got 3"]),
        (
            _set(("reduction", "blocks", 1, "inputs"), [0, 3]),
            ["reduction cell: block 1 reads (0, 3); only states 0..2 exist before it"],
        ),
        (_set(("reduction", "blocks", 1, "inputs"), [-1, 0]), ["block 1 reads (-1, 0)"]),
        (_set(("normal", "concat"), [2, 7]), ["normal cell: concat (2, 7) names states outside 0..6"]),
        (_set(("normal", "blocks", 0, "combine"), "concat"), ["block 0: combine must be one of ('add',)"]),
    ],
)
def test_malformed_genotypes(tmp_path, edit, parts):
    path = write(tmp_path, edited(edit))
    with pytest.raises(ConfigError) as error:
        load_genotype(path)
    assert_one_line(error, f"genotype file {path}: ", *parts)


def test_an_unknown_op_is_named_with_the_file(tmp_path):
    path = write(tmp_path, edited(_set(("reduction", "blocks", 4, "ops"), ["sep_conv_3x3", "conv_9x9"])))
    with pytest.raises(ConfigError) as error:
        load_genotype(path)
    assert_one_line(error, f"genotype file {path}: reduction cell: block 4: unknown ops ['conv_9x9']")


def test_an_op_outside_the_given_space(tmp_path):
    path = write(tmp_path, edited(_set(("normal", "blocks", 2, "ops"), ["conv_3x3", "identity"])))
    assert load_genotype(path, SPACES["nasnet"]).normal.blocks[2].ops == ("conv_3x3", "identity")
    with pytest.raises(ConfigError) as error:
        load_genotype(path, SPACES["amoeba"])
    assert_one_line(
        error, f"genotype file {path}: normal cell block 2: ops ['conv_3x3'] are not in space 'amoeba'"
    )


def test_save_refuses_before_writing(tmp_path):
    with_3x3 = Genotype.from_dict(edited(_set(("normal", "blocks", 2, "ops"), ["conv_3x3", "identity"])))
    target = tmp_path / "cells.json"
    with pytest.raises(ConfigError, match="not in space 'amoeba'"):
        save_genotype(with_3x3, target, SPACES["amoeba"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputFileError):
        save_genotype(NASNET_A, blocker / "cells.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing half-written
