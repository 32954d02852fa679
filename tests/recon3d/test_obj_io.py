"""OBJ + MTL + PNG: an exact round trip, all three files or none, one-line errors on bad input
and on malformed files."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.data import io as data_io
from edgevision.errors import ConfigError, InputFileError, ShapeError
from edgevision.recon3d.obj_io import read_obj, write_obj
from edgevision.recon3d.shading import vertex_normals


@pytest.fixture()
def mesh(unit_sphere: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """A sphere with awkward floats, its own UV triangles (not the vertex indices) and a noisy
    texture."""
    rng = np.random.default_rng(0)
    vertices, faces = unit_sphere
    vertices = vertices * 0.3 + [0.1, 1.0 / 3.0, -2e-7]
    uvs = rng.uniform(0, 1, (len(faces) * 3 // 2, 2))
    face_uvs = rng.integers(0, len(uvs), faces.shape)
    texture = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    return dict(vertices=vertices, faces=faces, uvs=uvs, face_uvs=face_uvs, texture=texture)


def test_what_is_written_reads_back_exactly(tmp_path: Path, mesh: dict[str, np.ndarray]) -> None:
    write_obj(tmp_path / "person.obj", **mesh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["person.mtl", "person.obj", "person.png"]
    read = read_obj(tmp_path / "person.obj")
    np.testing.assert_array_equal(read.vertices, mesh["vertices"])
    np.testing.assert_array_equal(read.faces, mesh["faces"])
    np.testing.assert_array_equal(read.uvs, mesh["uvs"])
    np.testing.assert_array_equal(read.face_uvs, mesh["face_uvs"])
    np.testing.assert_array_equal(read.normals, vertex_normals(mesh["vertices"], mesh["faces"]))
    np.testing.assert_array_equal(read.face_normals, mesh["faces"])
    assert read.texture_file == tmp_path / "person.png"
    np.testing.assert_array_equal(cv2.imread(str(read.texture_file)), mesh["texture"])
    obj_lines = (tmp_path / "person.obj").read_text().splitlines()
    assert "mtllib person.mtl" in obj_lines
    assert obj_lines[-1].startswith("f ") and obj_lines[-1].count("/") == 6
    assert "map_Kd person.png" in (tmp_path / "person.mtl").read_text().splitlines()


def test_a_failed_write_leaves_no_file(tmp_path: Path, mesh: dict[str, np.ndarray], monkeypatch) -> None:
    # The second rename fails: the first file, already in place, is taken back.
    renames = []
    real_replace = os.replace

    def replace(source: str, target: Path) -> None:
        renames.append(target)
        if len(renames) == 2:
            raise PermissionError(13, "Permission denied", str(target))
        real_replace(source, target)

    monkeypatch.setattr(data_io.os, "replace", replace)
    with pytest.raises(InputFileError, match=r"cannot write .*person.mtl: permission denied") as caught:
        write_obj(tmp_path / "person.obj", **mesh)
    assert "\n" not in str(caught.value)
    assert len(renames) == 2
    assert list(tmp_path.iterdir()) == []


def test_bad_input_writes_nothing(tmp_path: Path, mesh: dict[str, np.ndarray]) -> None:
    bad_inputs = {
        "must end in .obj": ({"path": tmp_path / "person.ply"}, InputFileError),
        "face_uvs must be one UV triangle per face": ({"face_uvs": mesh["face_uvs"][:5]}, ShapeError),
        "texture must be": ({"texture": mesh["texture"].astype(np.float32)}, ShapeError),
        "vertices must be finite": ({"vertices": np.full_like(mesh["vertices"], np.nan)}, ConfigError),
        "faces index vertices": ({"faces": mesh["faces"] + len(mesh["vertices"])}, ShapeError),
    }
    for message, (change, error) in bad_inputs.items():
        arguments = {"path": tmp_path / "person.obj", **mesh, **change}
        with pytest.raises(error, match=message):
            write_obj(**arguments)
    (tmp_path / "folder.obj").mkdir()
    with pytest.raises(InputFileError, match="is a folder"):
        write_obj(tmp_path / "folder.obj", **mesh)
    assert [p.name for p in tmp_path.iterdir()] == ["folder.obj"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("v 1 2", "line 4: v needs 3 numbers, got 2"),
        ("vt 0.5 zero", "line 4: could not convert"),
        ("f 1/1/1 2/1/1 3/1/1 1/1/1", "line 4: a face must be a triangle"),
        ("f 1//1 2//1 3//1", "line 4: invalid literal"),
        ("f 1/1/1 2/1/1 9/1/1", "a face indexes a v that is not there"),
    ],
)
def test_a_malformed_file_fails_in_one_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.obj"
    path.write_text(f"v 0 0 0\nv 1 0 0\nv 0 1 0\n{line}\nvt 0 0\nvn 0 0 1\n")
    with pytest.raises(InputFileError, match=problem) as caught:
        read_obj(path)
    assert "\n" not in str(caught.value)


def test_a_missing_material_or_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="OBJ file not found"):
        read_obj(tmp_path / "absent.obj")
    path = tmp_path / "x.obj"
    path.write_text("mtllib x.mtl\nv 0 0 0\n")
    with pytest.raises(InputFileError, match="material file .*x.mtl is missing"):
        read_obj(path)
