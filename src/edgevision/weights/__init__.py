"""Small trained weights shipped inside the package, each with a model card (``.md`` for people,
``.json`` for the registry's metadata) beside it. Which model uses which file is registry metadata
(:func:`edgevision.models.register_model`'s ``weights``)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent
