"""The Open Images V4 class hierarchy, as the challenge's hierarchy expansion reads it.

``bbox_labels_600_hierarchy.json`` is the class tree ``{"LabelName", "Subcategory": [...],
"Part": [...]}`` under the root ``/m/0bl9f`` ("Entity"). Only ``Subcategory`` links are followed
(a ``Part``, such as a door of a building, is not an instance of the whole) and the root is not a
class. The expansion of annotations up and down the tree is in
:mod:`edgevision.data.openimages_expansion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevision.data.io import read_json
from edgevision.errors import DatasetError


@dataclass(frozen=True)
class ClassHierarchy:
    """The Open Images class tree, as the challenge's expansion reads it.

    Attributes:
        root: the MID of the root (``/m/0bl9f``, "Entity"), not itself a class.
        parents: every class MID (the root excluded) -> its direct parents by ``Subcategory``
            links, the root excluded (so a top-level class has none). A class listed under several
            parents has them all.
    """

    root: str
    parents: Mapping[str, tuple[str, ...]]
    _ancestors: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _descendants: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parents = {mid: tuple(dict.fromkeys(ps)) for mid, ps in self.parents.items()}
        unknown = sorted({p for ps in parents.values() for p in ps} - set(parents))
        if unknown:
            raise DatasetError(f"class hierarchy names parents that are not classes, e.g. {unknown[0]!r}")
        children: dict[str, list[str]] = {mid: [] for mid in parents}
        for mid, ps in parents.items():
            for parent in ps:
                children[parent].append(mid)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "_ancestors", {mid: _closure(mid, parents) for mid in parents})
        object.__setattr__(self, "_descendants", {mid: _closure(mid, children) for mid in parents})

    @classmethod
    def from_json(cls, tree: Mapping[str, Any]) -> ClassHierarchy:
        """Build from the parsed ``bbox_labels_600_hierarchy.json`` (the root node).

        Raises:
            DatasetError: a node lacks ``LabelName`` or its ``Subcategory`` is not a list of nodes.
        """
        parents: dict[str, list[str]] = {}

        def walk(node: Any, parent: str | None, depth: int) -> str:
            if not isinstance(node, Mapping) or not isinstance(node.get("LabelName"), str):
                raise DatasetError(f"class hierarchy node without a LabelName: {str(node)[:80]}")
            if depth > 100:
                raise DatasetError("class hierarchy deeper than 100 levels (a cycle?)")
            mid = node["LabelName"]
            if parent is not None:
                parents.setdefault(mid, [])
                if parent != root:
                    parents[mid].append(parent)
            subcategories = node.get("Subcategory", [])
            if not isinstance(subcategories, list):
                raise DatasetError(f"class hierarchy node {mid}: Subcategory is not a list")
            for child in subcategories:  # "Part" links are not followed: see the module notes
                walk(child, mid, depth + 1)
            return mid

        if not isinstance(tree, Mapping) or not isinstance(tree.get("LabelName"), str):
            raise DatasetError("class hierarchy: the root node has no LabelName")
        root = tree["LabelName"]
        walk(tree, None, 0)
        if root in parents:
            raise DatasetError(f"class hierarchy: the root {root} is also listed below itself")
        return cls(root, {mid: tuple(ps) for mid, ps in parents.items()})

    @property
    def classes(self) -> tuple[str, ...]:
        """Every class MID under the root, in the file's depth-first order."""
        return tuple(self.parents)

    def __contains__(self, mid: object) -> bool:
        return mid in self.parents

    def __len__(self) -> int:
        return len(self.parents)

    def ancestors(self, mid: str) -> tuple[str, ...]:
        """Every class above ``mid`` (the root excluded), nearest first, each once."""
        return self._lookup(self._ancestors, mid)

    def descendants(self, mid: str) -> tuple[str, ...]:
        """Every class below ``mid``, nearest first, each once."""
        return self._lookup(self._descendants, mid)

    def with_descendants(self, mids: Iterable[str]) -> set[str]:
        """``mids`` and all their sub-classes."""
        out: set[str] = set()
        for mid in mids:
            out.add(mid)
            out.update(self.descendants(mid))
        return out

    @staticmethod
    def _lookup(table: dict[str, tuple[str, ...]], mid: str) -> tuple[str, ...]:
        try:
            return table[mid]
        except KeyError:
            raise DatasetError(f"class {mid!r} is not in the Open Images class hierarchy") from None


def _closure(start: str, links: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Every node reachable from ``start`` along ``links`` (``start`` excluded), breadth first."""
    seen: dict[str, None] = {}
    frontier = list(links[start])
    while frontier:
        nxt = []
        for node in frontier:
            if node not in seen and node != start:
                seen[node] = None
                nxt.extend(links[node])
        frontier = nxt
    return tuple(seen)


def load_hierarchy(path: str | Path) -> ClassHierarchy:
    """Read ``bbox_labels_600_hierarchy.json``.

    Raises:
        DatasetError: the file is missing, not JSON, or not a class tree.
    """
    return ClassHierarchy.from_json(read_json(path, "Open Images class hierarchy"))
