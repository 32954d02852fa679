"""Genotype files: a :class:`~edgevision.layers.nas_ops.Genotype` as JSON (its ``to_dict``), the
form in which a search hands its best cells to ``create_model("nasnet", genotype=...)``.

Example:
    >>> import tempfile, pathlib
    >>> from edgevision.models.nasnet import NASNET_A
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "nasnet_a.json"
    >>> load_genotype(save_genotype(NASNET_A, path)) == NASNET_A
    True
"""

from __future__ import annotations

import json
from pathlib import Path

from edgevision.data.io import atomic_write, check_output_file, read_json
from edgevision.errors import ConfigError, DatasetError, InputFileError
from edgevision.layers.nas_ops import Genotype
from edgevision.search.cell_space import CellSearchSpace

WHAT = "genotype file"


def save_genotype(genotype: Genotype, path: str | Path, space: CellSearchSpace | None = None) -> Path:
    """Write ``genotype`` to ``path`` as JSON, atomically (a reader never sees half a file).

    Raises:
        ConfigError: ``space`` is given and ``genotype`` is not in it.
        InputFileError: ``path`` cannot be written (checked before anything is).
    """
    if space is not None:
        space.check(genotype)
    path = check_output_file(path, WHAT)
    with atomic_write(path, "w") as handle:
        json.dump(genotype.to_dict(), handle, indent=2)
        handle.write("\n")
    return path


def load_genotype(path: str | Path, space: CellSearchSpace | None = None) -> Genotype:
    """The genotype a :func:`save_genotype` file holds, its concat as written.

    Raises:
        InputFileError: ``path`` is missing or not JSON.
        ConfigError: the genotype is malformed (missing keys, wrong types or counts, an input
            index out of range, an unknown op) or, with ``space``, not in that space; the message
            names the file, the cell, the block and the field.
    """
    try:
        data = read_json(path, WHAT)
    except DatasetError as error:
        raise InputFileError(str(error)) from None
    try:
        return Genotype.from_dict(data) if space is None else space.from_json(data)
    except ConfigError as error:
        raise ConfigError(f"{WHAT} {path}: {error}") from None
