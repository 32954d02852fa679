"""Uniformly random NASNet-space genotypes for the search benchmarks (NASNet Sec. 3: per block,
two inputs among the states before it and two ops, all uniform; the loose ends concatenated).

A stand-in until ``edgevision.search.cell_space`` (the search space proper) is on main.
"""

from __future__ import annotations

import random

from edgevision.layers.nas_ops import OPS, Block, CellGenotype, Genotype


def random_cell(rng: random.Random, num_blocks: int = 5) -> CellGenotype:
    ops = sorted(OPS)
    blocks = tuple(
        Block((rng.randrange(2 + k), rng.randrange(2 + k)), (rng.choice(ops), rng.choice(ops)))
        for k in range(num_blocks)
    )
    read = {i for block in blocks for i in block.inputs}
    return CellGenotype(blocks, tuple(i for i in range(2, 2 + num_blocks) if i not in read))


def random_genotype(rng: random.Random) -> Genotype:
    return Genotype(random_cell(rng), random_cell(rng))
