"""The reconstruction as files: a Wavefront OBJ (vertices, texture coordinates, normals,
triangles ``f v/vt/vn``), its material (MTL) and its texture (PNG), written all three or none;
and a reader for the OBJ files written here.

``write_obj("out/person.obj", ...)`` writes ``person.obj``, ``person.mtl`` (one material whose
``map_Kd`` is the texture) and ``person.png`` beside each other. Numbers are written as Python's
``repr`` (the shortest decimal that reads back as the same float64), so they round-trip
exactly. Texture coordinates are OBJ's: u right, v up, in [0, 1]; the texture is written as
given (the project's images are BGR, as cv2 writes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgevision.data.io import atomic_write_files, check_output_file
from edgevision.errors import InputFileError, ShapeError
from edgevision.recon3d._checks import as_faces, as_rows
from edgevision.recon3d.shading import vertex_normals

MATERIAL = "texture"


@dataclass(frozen=True, eq=False)
class TexturedMesh:
    """An OBJ's contents: vertices ``(V, 3)``, faces ``(F, 3)`` (0-based vertex indices), uvs
    ``(T, 2)`` and face_uvs ``(F, 3)``, normals ``(N, 3)`` and face_normals ``(F, 3)``, and the
    texture file its material names (None without one)."""

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    face_uvs: np.ndarray
    normals: np.ndarray
    face_normals: np.ndarray
    texture_file: Path | None


def write_obj(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray,
    face_uvs: np.ndarray,
    texture: np.ndarray,
) -> None:
    """Write the textured mesh as ``path`` (.obj), with its .mtl and .png beside it, all three
    or none (:func:`edgevision.data.io.atomic_write_files`). Normals: the mesh's vertex normals
    (area-weighted), one per vertex.

    Args:
        vertices: ``(V, 3)`` metres. faces: ``(F, 3)`` vertex indices, counter-clockwise seen
            from outside. uvs: ``(T, 2)``; face_uvs: ``(F, 3)`` indices into them.
        texture: ``(H, W, 3)`` uint8.

    Raises:
        ShapeError, ConfigError: bad arrays (before anything is written).
        InputFileError: ``path`` is not an .obj file name, or its folder cannot be written.
    """
    path = check_output_file(path, "OBJ file")
    if path.suffix.lower() != ".obj":
        raise InputFileError(f"OBJ file {path} must end in .obj")
    vertices = as_rows("vertices", vertices, 3)
    faces = as_faces(faces, len(vertices))
    uvs = as_rows("uvs", uvs, 2)
    face_uvs = as_faces(face_uvs, len(uvs))
    if face_uvs.shape != faces.shape:
        raise ShapeError(f"face_uvs must be one UV triangle per face, {faces.shape}, got {face_uvs.shape}")
    texture = np.asarray(texture)
    if texture.ndim != 3 or texture.shape[2] != 3 or texture.dtype != np.uint8 or not texture.size:
        raise ShapeError(f"texture must be an (H, W, 3) uint8 image, got {texture.shape} of {texture.dtype}")
    ok, png = cv2.imencode(".png", texture)
    if not ok:
        raise InputFileError(f"cannot encode the texture of {path} as PNG")
    material, image = path.with_suffix(".mtl"), path.with_suffix(".png")
    obj = _obj_text(vertices, faces, uvs, face_uvs, vertex_normals(vertices, faces), material.name)
    mtl = f"newmtl {MATERIAL}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {image.name}\n"
    # The OBJ last: a reader that finds it finds its material and texture.
    atomic_write_files({image: png.tobytes(), material: mtl.encode(), path: obj.encode()})


def _obj_text(
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray,
    face_uvs: np.ndarray,
    normals: np.ndarray,
    material_file: str,
) -> str:
    lines = ["# edgevision recon3d", f"mtllib {material_file}", f"usemtl {MATERIAL}"]
    lines += [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices.tolist()]
    lines += [f"vt {u!r} {v!r}" for u, v in uvs.tolist()]
    lines += [f"vn {x!r} {y!r} {z!r}" for x, y, z in normals.tolist()]
    corners = np.stack([faces, face_uvs, faces], axis=-1) + 1  # (F, 3, 3): v/vt/vn, 1-based
    lines += ["f " + " ".join(f"{v}/{t}/{n}" for v, t, n in face) for face in corners.tolist()]
    return "\n".join(lines) + "\n"


def read_obj(path: str | Path) -> TexturedMesh:
    """Read an OBJ of triangles with ``v/vt/vn`` corners (as :func:`write_obj` writes) and the
    texture its material names (``mtllib`` + ``map_Kd``, paths relative to the OBJ).

    Raises:
        InputFileError: one line naming the file, the line and the problem: missing, not UTF-8,
            a malformed number, a face that is not a triangle of three ``v/vt/vn`` corners, an
            index out of range, a missing material file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"OBJ file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputFileError(f"OBJ file {path} is not UTF-8 text") from None
    rows: dict[str, list[list[float]]] = {"v": [], "vt": [], "vn": []}
    corners: list[list[list[int]]] = []
    material_file = None
    for number, line in enumerate(text.splitlines(), start=1):
        keyword, *fields = line.split("#", 1)[0].split() or [""]
        try:
            if keyword in rows:
                size = 2 if keyword == "vt" else 3
                if len(fields) != size:
                    raise ValueError(f"{keyword} needs {size} numbers, got {len(fields)}")
                rows[keyword].append([float(field) for field in fields])
            elif keyword == "f":
                face = [[int(index) for index in field.split("/")] for field in fields]
                if len(face) != 3 or any(len(corner) != 3 for corner in face):
                    raise ValueError(
                        f"a face must be a triangle of v/vt/vn corners, got {' '.join(fields)!r}"
                    )
                corners.append(face)
            elif keyword == "mtllib":
                material_file = path.parent / " ".join(fields)
        except ValueError as error:
            raise InputFileError(f"OBJ file {path} line {number}: {error}") from None
    arrays = {
        key: np.array(value, dtype=np.float64).reshape(-1, 3 if key != "vt" else 2)
        for key, value in rows.items()
    }
    indices = np.array(corners, dtype=np.int64).reshape(-1, 3, 3) - 1
    for column, key in enumerate(("v", "vt", "vn")):
        if indices.size and (
            indices[..., column].min() < 0 or indices[..., column].max() >= len(arrays[key])
        ):
            raise InputFileError(
                f"OBJ file {path}: a face indexes a {key} that is not there (1..{len(arrays[key])})"
            )
    return TexturedMesh(
        vertices=arrays["v"],
        faces=indices[..., 0],
        uvs=arrays["vt"],
        face_uvs=indices[..., 1],
        normals=arrays["vn"],
        face_normals=indices[..., 2],
        texture_file=None if material_file is None else _texture_of(material_file, path),
    )


def _texture_of(material_file: Path, obj_path: Path) -> Path | None:
    """The ``map_Kd`` file a material library names (relative to it), None without one."""
    if not material_file.is_file():
        raise InputFileError(f"OBJ file {obj_path}: its material file {material_file} is missing")
    for line in material_file.read_text(encoding="utf-8").splitlines():
        keyword, *fields = line.split() or [""]
        if keyword == "map_Kd" and fields:
            return material_file.parent / " ".join(fields)
    return None
