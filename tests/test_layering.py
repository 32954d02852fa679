"""The packages import downwards only (docs/architecture.md, "Layers"): a module may import its
own layer and the layers below it, never one above, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import edgevision

PACKAGE = Path(edgevision.__file__).parent

# Bottom first; the same table as docs/architecture.md.
LAYERS = [
    {"errors", "validation", "boxes", "weights"},
    {"data"},
    {"layers", "detection"},
    {"models"},
    {"training", "evaluation", "deploy", "visualize", "recognition", "recon3d"},
    {"search"},
    {"api", "cli", "cli_media", "cli_gallery", "cli_search", "__init__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """``edgevision.data.io`` -> ``data``; ``edgevision`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_edgevision_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "edgevision" or name.startswith("edgevision.")}


def test_every_top_level_part_has_a_layer() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    parts = modules | packages
    assert parts <= set(RANK), sorted(parts - set(RANK))


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        own = part_of(".".join(relative.parts))
        for module in imported_edgevision_modules(path):
            if module == "edgevision":  # the package itself, e.g. for __version__
                continue
            if RANK[part_of(module)] > RANK[own]:
                upward.append(f"{relative}: {module}")
    assert not upward, upward
