"""The NASNet and AmoebaNet cell search spaces: the papers' op lists, the controller's decision
sequence, uniform sampling, Real et al.'s three mutations, loose-end concats, and every genotype
of each space building as a network."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from edgevision.errors import ConfigError
from edgevision.layers.nas_ops import OPS, Block, CellGenotype, Genotype
from edgevision.models import create_model
from edgevision.models.amoebanet import AMOEBANET_A
from edgevision.models.nasnet import NASNET_A
from edgevision.search.cell_space import SPACES, CellSearchSpace, get_space, loose_ends
from edgevision.search.space import SearchSpace

torch.set_num_threads(1)

NASNET, AMOEBA = SPACES["nasnet"], SPACES["amoeba"]
P_MIN = 1e-3  # chi-square p-value under which a fixed-seed frequency count is called non-uniform


def samples(space: CellSearchSpace, n: int, seed: int = 0) -> list[Genotype]:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def cells(genotype: Genotype) -> tuple[CellGenotype, CellGenotype]:
    return genotype.normal, genotype.reduction


# ------------------------------------------------------------------------------------------------
# The spaces


def test_the_papers_op_lists():
    # NASNet Sec. 3: 13 ops; AmoebaNet Sec. 3: 8 ops, the dilated separable conv not NASNet's.
    assert set(NASNET.ops) == set(OPS) - {"dil_sep_conv_3x3"}
    assert len(NASNET.ops) == 13
    amoeba = "identity sep_conv_3x3 sep_conv_5x5 sep_conv_7x7 avg_pool_3x3 max_pool_3x3 dil_sep_conv_3x3"
    assert AMOEBA.ops == (*amoeba.split(), "conv_1x7_7x1")
    assert set(AMOEBA.ops) - set(NASNET.ops) == {"dil_sep_conv_3x3"}


@pytest.mark.parametrize("space", [NASNET, AMOEBA], ids=["nasnet", "amoeba"])
def test_a_space_is_a_search_space_with_the_controllers_decisions(space):
    assert isinstance(space, SearchSpace)
    assert get_space(space.name) is space
    # Zoph et al. Sec. 3: per cell, per block: two hidden states (block k has k + 2 to choose
    # from), then two ops; 2 cells x 5 blocks x 4 decisions.
    n = len(space.ops)
    per_cell = (2, 2, n, n, 3, 3, n, n, 4, 4, n, n, 5, 5, n, n, 6, 6, n, n)
    assert space.num_choices == per_cell + per_cell


def test_an_unknown_space_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown search space 'darts'; spaces: nasnet, amoeba"):
        get_space("darts")


@pytest.mark.parametrize(
    ("ops", "num_blocks", "match"),
    [
        (("identity", "conv_9x9"), 5, "unknown ops \\['conv_9x9'\\]"),
        (("identity",), 5, "at least two distinct ops"),
        (("identity", "identity"), 5, "at least two distinct ops"),
        (("identity", "conv_1x1"), 0, "num_blocks must be a positive integer, got 0"),
    ],
)
def test_bad_spaces_are_refused(ops, num_blocks, match):
    with pytest.raises(ConfigError, match=match):
        CellSearchSpace("bad", ops, num_blocks)


# ------------------------------------------------------------------------------------------------
# Loose ends


def test_loose_ends_of_a_hand_built_cell():
    # Blocks 0..4 are states 2..6. Blocks 1 and 2 read block 0 (state 2), block 3 reads blocks 0
    # and 1 (2, 3), block 4 reads block 2 (4): blocks 3 and 4 (states 5, 6) are read by none. No
    # block reads h_{i-2} (state 1) either, but it is an input, not a loose end.
    decisions = [0, 0, 0, 0] + [2, 0, 1, 1] + [2, 2, 2, 2] + [3, 2, 3, 3] + [0, 4, 4, 4]
    space = CellSearchSpace("small", ("identity", "conv_1x1", "avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3"))
    genotype = space.decode(decisions + decisions)
    assert genotype.normal.blocks[3] == Block((3, 2), ("max_pool_3x3", "max_pool_3x3"))
    assert genotype.normal.concat == genotype.reduction.concat == (5, 6)
    # A cell in which no block reads another concatenates every block.
    independent = [0, 1, 0, 0] * 5
    assert space.decode(independent * 2).normal.concat == (2, 3, 4, 5, 6)


def test_the_published_concats_are_not_the_loose_ends():
    # NASNet-A's normal cell reads no block output: the paper's loose ends are blocks 0-4, the
    # reference also concatenates h_{i-2}. Its reduction cell reads blocks 0 and 1; the reference
    # concatenates block 1 anyway. That is why the concat is data in a loaded genotype.
    assert loose_ends(NASNET_A.normal.blocks) == (2, 3, 4, 5, 6)
    assert NASNET_A.normal.concat == (1, 2, 3, 4, 5, 6)
    assert loose_ends(NASNET_A.reduction.blocks) == (4, 5, 6)
    assert NASNET_A.reduction.concat == (3, 4, 5, 6)
    assert loose_ends(AMOEBANET_A.reduction.blocks) == (3, 5, 6)
    assert AMOEBANET_A.reduction.concat == (2, 3, 4, 5, 6)


# ------------------------------------------------------------------------------------------------
# Encoding


@pytest.mark.parametrize("space", [NASNET, AMOEBA], ids=["nasnet", "amoeba"])
def test_encode_decode_round_trip(space):
    for genotype in samples(space, 300):
        decisions = space.encode(genotype)
        assert all(0 <= d < n for d, n in zip(decisions, space.num_choices, strict=True))
        assert space.decode(decisions) == genotype
        assert all(cell.concat == loose_ends(cell.blocks) for cell in cells(genotype))
    rng = random.Random(1)
    for _ in range(300):
        decisions = tuple(rng.randrange(n) for n in space.num_choices)
        assert space.encode(space.decode(decisions)) == decisions


def test_encode_is_the_controllers_order():
    assert NASNET.decode([0] * 40).normal.blocks[0] == Block((0, 0), ("identity", "identity"))
    decisions = list(NASNET.encode(NASNET_A))
    # Normal block 0: h_{i-1}, h_{i-2}, sep 5x5, sep 3x3; reduction block 3: block 1, block 0,
    # identity, avg pool (NASNet-A, Fig. 4).
    assert decisions[:4] == [0, 1, NASNET.ops.index("sep_conv_5x5"), NASNET.ops.index("sep_conv_3x3")]
    assert decisions[20 + 12 : 20 + 16] == [3, 2, 0, NASNET.ops.index("avg_pool_3x3")]


def test_decode_accepts_numpy_and_torch_integers():
    decisions = NASNET.encode(NASNET_A)
    expected = NASNET.decode(decisions)
    assert NASNET.decode(np.array(decisions)) == expected
    assert NASNET.decode(torch.tensor(decisions)) == expected
    assert type(NASNET.decode(np.array(decisions)).normal.blocks[0].inputs[0]) is int  # JSON-ready


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d[:-1], "space 'nasnet' takes 40 decisions, got 39"),
        (lambda d: [*d, 0], "takes 40 decisions, got 41"),
        (lambda d: [2, *d[1:]], r"normal cell block 0 input 0: decision 2 is outside 0\.\.1"),
        (lambda d: [*d[:5], -1, *d[6:]], r"normal cell block 1 input 1: decision -1 is outside 0\.\.2"),
        (lambda d: [*d[:-1], 13], r"reduction cell block 4 op 1: decision 13 is outside 0\.\.12"),
        (lambda d: [0.0, *d[1:]], "normal cell block 0 input 0: decisions are integers, got 0.0"),
    ],
)
def test_decode_refuses_bad_sequences(change, match):
    with pytest.raises(ConfigError, match=match):
        NASNET.decode(change(list(NASNET.encode(NASNET_A))))


def test_genotypes_outside_a_space_are_refused():
    # NASNet-A uses only ops AmoebaNet's space has; a 1x1 conv is NASNet's only.
    AMOEBA.encode(NASNET_A)
    with_1x1 = NASNET.decode([0] * 2 + [NASNET.ops.index("conv_1x1")] * 2 + [0] * 36)
    with pytest.raises(
        ConfigError, match=r"normal cell block 0: ops \['conv_1x1', 'conv_1x1'\] are not in space 'amoeba'"
    ):
        AMOEBA.encode(with_1x1)
    with pytest.raises(ConfigError, match="not in space 'amoeba'"):
        AMOEBA.mutate(with_1x1, random.Random(0))
    four_blocks = CellSearchSpace("four", NASNET.ops, num_blocks=4).sample(random.Random(0))
    with pytest.raises(ConfigError, match="normal cell has 4 blocks; space 'nasnet' has 5"):
        NASNET.encode(four_blocks)


def test_json_keeps_the_published_concat():
    for space, genotype in ((NASNET, NASNET_A), (AMOEBA, AMOEBANET_A)):
        assert space.from_json(space.to_json(genotype)) == genotype
    with pytest.raises(ConfigError, match="'dil_conv_3x3'.*not in space 'amoeba'"):
        data = NASNET_A.to_dict()
        data["reduction"]["blocks"][2]["ops"][0] = "dil_conv_3x3"
        AMOEBA.from_json(data)


# ------------------------------------------------------------------------------------------------
# Sampling


def test_sampling_is_uniform_over_ops_and_inputs():
    genotypes = samples(NASNET, 2000)
    ops = Counter(op for g in genotypes for cell in cells(g) for block in cell.blocks for op in block.ops)
    assert set(ops) == set(NASNET.ops)
    assert chisquare([ops[op] for op in NASNET.ops]).pvalue > P_MIN
    for k in range(5):
        inputs = Counter(i for g in genotypes for cell in cells(g) for i in cell.blocks[k].inputs)
        assert set(inputs) == set(range(k + 2)), k  # every existing state, no later one
        assert chisquare([inputs[i] for i in range(k + 2)]).pvalue > P_MIN, k


def test_sampling_follows_the_rng_alone():
    assert samples(AMOEBA, 20, seed=5) == samples(AMOEBA, 20, seed=5)
    assert samples(AMOEBA, 20, seed=5) != samples(AMOEBA, 20, seed=6)
    assert len(set(samples(AMOEBA, 200))) == 200  # hashable; 3e29 genotypes: no repeats


# ------------------------------------------------------------------------------------------------
# Mutation


def diff(parent: Genotype, child: Genotype) -> list[tuple[str, int, str, int, object, object]]:
    """(cell, block, "inputs" | "ops", side, old, new) for every input or op that differs."""
    changes = []
    for name, old, new in zip(("normal", "reduction"), cells(parent), cells(child), strict=True):
        for k, (a, b) in enumerate(zip(old.blocks, new.blocks, strict=True)):
            for field in ("inputs", "ops"):
                for side in range(2):
                    if getattr(a, field)[side] != getattr(b, field)[side]:
                        changes.append(
                            (name, k, field, side, getattr(a, field)[side], getattr(b, field)[side])
                        )
    return changes


@pytest.mark.parametrize("space", [NASNET, AMOEBA], ids=["nasnet", "amoeba"])
def test_mutation_is_one_of_real_et_al_s_three(space):
    rng = random.Random(0)
    trials = 3000
    kinds, cell_counts, new_inputs, new_ops = Counter(), Counter(), set(), set()
    for parent in samples(space, trials, seed=1):
        child = space.mutate(parent, rng)
        changes = diff(parent, child)
        assert len(changes) <= 1, changes  # at most one input or op, so in exactly one cell
        if not changes:
            assert child == parent
            kinds["identity"] += 1
            continue
        (cell, k, field, _side, old, new) = changes[0]
        kinds[field] += 1
        cell_counts[cell] += 1
        if field == "inputs":
            assert new != old and 0 <= new < k + 2  # another state that exists before block k
            new_inputs.add((k, new))
        else:
            assert new != old and new in space.ops
            new_ops.add(new)
        untouched = "reduction" if cell == "normal" else "normal"
        assert getattr(child, untouched) is getattr(parent, untouched)
        mutated = getattr(child, cell)
        assert mutated.concat == loose_ends(mutated.blocks)
    # Each kind with probability 1/3 (sd of a count ~ 26 in 3000), each cell 1/2.
    for kind in ("identity", "inputs", "ops"):
        assert kinds[kind] / trials == pytest.approx(1 / 3, abs=0.035), kinds
    assert cell_counts["normal"] / sum(cell_counts.values()) == pytest.approx(0.5, abs=0.04)
    # Every state available to every block is reached, and every op.
    assert new_inputs == {(k, i) for k in range(5) for i in range(k + 2)}
    assert new_ops == set(space.ops)


def test_mutation_of_a_published_genotype_recomputes_the_mutated_cells_concat_only():
    rng = random.Random(3)
    for _ in range(50):
        child = NASNET.mutate(NASNET_A, rng)
        if child == NASNET_A:
            continue
        changed = [
            name for name in ("normal", "reduction") if getattr(child, name) != getattr(NASNET_A, name)
        ]
        (cell,) = changed
        assert getattr(child, cell).concat == loose_ends(getattr(child, cell).blocks)
        other = "reduction" if cell == "normal" else "normal"
        assert getattr(child, other).concat == getattr(NASNET_A, other).concat


# ------------------------------------------------------------------------------------------------
# Building


def forward(genotype: Genotype) -> torch.Tensor:
    torch.manual_seed(0)
    model = create_model("nasnet", genotype=genotype).eval()
    with torch.no_grad():
        return model(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("space", [NASNET, AMOEBA], ids=["nasnet", "amoeba"])
def test_sampled_genotypes_build_and_run(space):
    for genotype in samples(space, 2, seed=7):
        out = forward(genotype)
        assert out.shape == (2, 2)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("space", [NASNET, AMOEBA], ids=["nasnet", "amoeba"])
def test_a_genotype_with_every_op_of_the_space_builds_and_runs(space):
    # Op slot i gets op i mod len(ops): the 20 op slots of the two cells cover all 13 (8) ops.
    rng = random.Random(0)
    decisions, slot = [], 0
    for n in space.num_choices:
        if len(decisions) % 4 >= 2:  # op 0, op 1 of a block
            decisions.append(slot % n)
            slot += 1
        else:
            decisions.append(rng.randrange(n))
    genotype = space.decode(decisions)
    used = {op for cell in cells(genotype) for block in cell.blocks for op in block.ops}
    assert used == set(space.ops)
    out = forward(genotype)
    assert out.shape == (2, 2)
    assert torch.isfinite(out).all()
