"""NASNet's and AmoebaNet's cell search spaces over :class:`~edgevision.layers.nas_ops.Genotype`.

An architecture is a normal and a reduction cell of ``B`` blocks (B = 5, NASNet Sec. 3). Each
block picks two inputs from the hidden states that exist before it (``h_{i-1}``, ``h_{i-2}`` and
the earlier blocks: states ``0..k+1`` for block ``k``, indexed as in :mod:`~edgevision.layers.nas_ops`),
one op from the space's list for each input, and adds the two results (the one combine op
NASNet-A and AmoebaNet-A use, so it is not a decision).

The controller's decisions (Zoph et al. 2018, Sec. 3: per block two hidden states, then two
ops) come normal cell first, then reduction cell, and per block in the order input 0, input 1,
op 0, op 1; an input decision of block ``k`` has ``k + 2`` choices, an op decision one per op.

The cell's output concatenates its loose ends, the block outputs no block of the cell reads, as
both papers describe (NASNet Sec. 3, AmoebaNet Sec. 3). The published NASNet-A and AmoebaNet-A
genotypes concatenate what the reference code's ``used_hiddenstates`` masks leave out instead,
which is not always the loose ends (NASNet-A's normal cell also concatenates ``h_{i-2}``). So
:meth:`CellSearchSpace.from_json` keeps any valid ``concat`` it is given (the published cells
load as they are), while :meth:`~CellSearchSpace.decode`, :meth:`~CellSearchSpace.sample` and
:meth:`~CellSearchSpace.mutate` make loose ends: the concat is derived, never searched.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Sequence
from typing import Any

from edgevision.errors import ConfigError
from edgevision.layers.nas_ops import OPS, Block, CellGenotype, Genotype

CELLS = ("normal", "reduction")
DECISIONS_PER_BLOCK = 4  # input 0, input 1, op 0, op 1 (Zoph et al. 2018, Sec. 3)


def loose_ends(blocks: Sequence[Block]) -> tuple[int, ...]:
    """The block outputs (states ``2..``) that no block reads, in order. Never empty: nothing
    reads the last block."""
    read = {i for block in blocks for i in block.inputs}
    return tuple(state for state in range(2, 2 + len(blocks)) if state not in read)


def _with_loose_ends(blocks: Sequence[Block]) -> CellGenotype:
    return CellGenotype(tuple(blocks), loose_ends(blocks))


class CellSearchSpace:
    """The NASNet-style space of genotypes with ``num_blocks`` blocks per cell and ops from
    ``ops`` (names in :data:`~edgevision.layers.nas_ops.OPS`); implements
    :class:`~edgevision.search.space.SearchSpace`.

    Raises:
        ConfigError: an op is unknown or repeated, fewer than two ops (an op mutation needs a
            different op), or ``num_blocks < 1``.
    """

    def __init__(self, name: str, ops: Sequence[str], num_blocks: int = 5) -> None:
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ConfigError(f"space {name!r}: unknown ops {unknown}; known: {', '.join(OPS)}")
        if len(set(ops)) != len(ops) or len(ops) < 2:
            raise ConfigError(f"space {name!r} needs at least two distinct ops, got {list(ops)}")
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ConfigError(f"space {name!r}: num_blocks must be a positive integer, got {num_blocks!r}")
        self.name = name
        self.ops = tuple(ops)
        self.num_blocks = num_blocks
        per_block = [(k + 2, k + 2, len(ops), len(ops)) for k in range(num_blocks)]
        self.num_choices: tuple[int, ...] = tuple(n for _ in CELLS for block in per_block for n in block)
        self._labels = tuple(
            f"{cell} cell block {k} {what}"
            for cell in CELLS
            for k in range(num_blocks)
            for what in ("input 0", "input 1", "op 0", "op 1")
        )

    def __repr__(self) -> str:
        return f"CellSearchSpace({self.name!r}, {list(self.ops)}, num_blocks={self.num_blocks})"

    def check(self, genotype: Genotype) -> None:
        """Raise :class:`ConfigError` unless ``genotype`` has this space's block count and ops
        (its concat may be any valid one)."""
        if not isinstance(genotype, Genotype):
            raise ConfigError(f"space {self.name!r} holds Genotypes, got {type(genotype).__name__}")
        for cell in CELLS:
            blocks = getattr(genotype, cell).blocks
            if len(blocks) != self.num_blocks:
                raise ConfigError(
                    f"{cell} cell has {len(blocks)} blocks; space {self.name!r} has {self.num_blocks}"
                )
            for k, block in enumerate(blocks):
                outside = [op for op in block.ops if op not in self.ops]
                if outside:
                    raise ConfigError(
                        f"{cell} cell block {k}: ops {outside} are not in space {self.name!r} "
                        f"({', '.join(self.ops)})"
                    )

    def encode(self, arch: Genotype) -> tuple[int, ...]:
        """The decision sequence of ``arch`` (its concat is not a decision)."""
        self.check(arch)
        return tuple(
            d
            for cell in CELLS
            for block in getattr(arch, cell).blocks
            for d in (*block.inputs, *(self.ops.index(op) for op in block.ops))
        )

    def decode(self, decisions: Sequence[int]) -> Genotype:
        """The genotype ``decisions`` describe, with loose-end concats.

        Raises:
            ConfigError: not ``len(num_choices)`` integers, or a decision out of its range.
        """
        try:
            decisions = list(decisions)
        except TypeError:
            raise ConfigError(f"decisions must be a sequence of integers, got {decisions!r}") from None
        if len(decisions) != len(self.num_choices):
            raise ConfigError(
                f"space {self.name!r} takes {len(self.num_choices)} decisions, got {len(decisions)}"
            )
        values = []
        for label, n, d in zip(self._labels, self.num_choices, decisions, strict=True):
            try:
                d = operator.index(d)  # numpy and torch integers too; never a float
            except TypeError:
                raise ConfigError(f"{label}: decisions are integers, got {d!r}") from None
            if not 0 <= d < n:
                raise ConfigError(f"{label}: decision {d} is outside 0..{n - 1}")
            values.append(d)
        per_cell = DECISIONS_PER_BLOCK * self.num_blocks
        cells = []
        for c in range(len(CELLS)):
            cell = values[c * per_cell : (c + 1) * per_cell]
            blocks = [
                Block((a, b), (self.ops[op_a], self.ops[op_b]))
                for a, b, op_a, op_b in zip(*[iter(cell)] * DECISIONS_PER_BLOCK, strict=True)
            ]
            cells.append(_with_loose_ends(blocks))
        return Genotype(*cells)

    def sample(self, rng: random.Random) -> Genotype:
        """Every decision uniform and independent, so every genotype of the space is equally
        likely (decision sequences and loose-end genotypes correspond one to one)."""
        return self.decode([rng.randrange(n) for n in self.num_choices])

    def mutate(self, arch: Genotype, rng: random.Random) -> Genotype:
        """One mutation of Real et al. 2019 (Sec. 2, Fig. 2): the normal or the reduction cell at
        random, then with equal odds a hidden-state mutation (one input of a random block becomes
        another state that exists before the block: no loops), an op mutation (one op of a random
        block becomes another op of the space) or the identity (``arch`` itself). The mutated
        cell's concat becomes its loose ends; the other cell is left as it is."""
        self.check(arch)
        cell = rng.choice(CELLS)
        kind = rng.choice(("hidden_state", "op", "identity"))
        if kind == "identity":
            return arch
        blocks = list(getattr(arch, cell).blocks)
        k, side = rng.randrange(self.num_blocks), rng.randrange(2)
        block = blocks[k]
        if kind == "hidden_state":
            inputs = list(block.inputs)
            inputs[side] = rng.choice([i for i in range(k + 2) if i != inputs[side]])
            blocks[k] = Block((inputs[0], inputs[1]), block.ops, block.combine)
        else:
            ops = list(block.ops)
            ops[side] = rng.choice([op for op in self.ops if op != ops[side]])
            blocks[k] = Block(block.inputs, (ops[0], ops[1]), block.combine)
        mutated = _with_loose_ends(blocks)
        return Genotype(mutated, arch.reduction) if cell == "normal" else Genotype(arch.normal, mutated)

    def to_json(self, arch: Genotype) -> dict[str, Any]:
        self.check(arch)
        return arch.to_dict()

    def from_json(self, data: Any) -> Genotype:
        """Inverse of :meth:`to_json`, keeping the given concat; :class:`ConfigError` on malformed
        data or ops outside the space."""
        genotype = Genotype.from_dict(data)
        self.check(genotype)
        return genotype


# NASNet Sec. 3, in the paper's order: identity; 1x3 then 3x1 conv; 1x7 then 7x1 conv; 3x3 dilated
# conv; 3x3 average pooling; 3x3, 5x5, 7x7 max pooling; 1x1 conv; 3x3 conv; 3x3, 5x5, 7x7
# depthwise-separable conv.
NASNET_OPS = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)
# AmoebaNet Sec. 3, in the paper's order: none (identity); 3x3, 5x5, 7x7 separable convs; 3x3
# average pooling; 3x3 max pooling; 3x3 dilated separable conv; 1x7 then 7x1 conv.
AMOEBA_OPS = (
    "identity",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "avg_pool_3x3",
    "max_pool_3x3",
    "dil_sep_conv_3x3",
    "conv_1x7_7x1",
)

SPACES: dict[str, CellSearchSpace] = {
    "nasnet": CellSearchSpace("nasnet", NASNET_OPS),
    "amoeba": CellSearchSpace("amoeba", AMOEBA_OPS),
}


def get_space(name: str) -> CellSearchSpace:
    """The space registered as ``name`` in :data:`SPACES`.

    Raises:
        ConfigError: ``name`` is not one, naming those that are.
    """
    if name not in SPACES:
        raise ConfigError(f"unknown search space {name!r}; spaces: {', '.join(SPACES)}")
    return SPACES[name]
