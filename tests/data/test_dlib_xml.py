"""dlib imglab XML: the real dlib face sets and small fixtures in the exact format."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgevision.data.dlib_xml import read_dlib_xml
from edgevision.errors import DatasetError

FIXTURE = """<?xml version='1.0' encoding='ISO-8859-1'?>
<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>
<dataset>
<name>fixture</name>
<comment>Written as imglab writes it.</comment>
<images>
  <image file='sub/a.jpg' width='500' height='375'>
    <box top='90' left='194' width='37' height='38'/>
    <box top='10' left='20' width='30' height='40' ignore='1'/>
    <box top='5' left='6' width='7' height='8' ignore='0'>
      <label>face</label>
      <part name='00' x='8' y='9'/>
    </box>
  </image>
  <image file='b.png'>
  </image>
</images>
</dataset>
"""


@pytest.fixture(scope="module")
def dlib_dir(data_dir: Path) -> Path:
    folder = data_dir / "dlib_faces_voc"
    if not (folder / "training.xml").is_file():
        pytest.skip(f"dlib face data not found at {folder}")
    return folder


@pytest.mark.parametrize("name, images, faces", [("training.xml", 4, 18), ("testing.xml", 5, 25)])
def test_real_counts(dlib_dir: Path, name: str, images: int, faces: int) -> None:
    records = read_dlib_xml(dlib_dir / name)
    assert len(records) == images
    assert sum(len(r.boxes) for r in records) == faces
    text = (dlib_dir / name).read_text(encoding="latin-1")
    assert len(re.findall(r"<box ", text)) == faces and len(re.findall(r"<image ", text)) == images
    assert all(r.path.is_file() for r in records)
    # These files mark no box ignore.
    assert all(
        r.ignore.dtype == bool and r.ignore.shape == (len(r.boxes),) and not r.ignore.any() for r in records
    )


def test_real_first_image(dlib_dir: Path) -> None:
    first = read_dlib_xml(dlib_dir / "training.xml")[0]
    assert first.path == dlib_dir / "2007_007763.jpg"
    assert first.boxes.dtype == np.float32 and first.boxes.shape == (7, 4)
    # <box top='90' left='194' width='37' height='37'/> and <box top='89' left='381' width='45' height='44'/>
    np.testing.assert_array_equal(first.boxes[0], [194, 90, 231, 127])
    np.testing.assert_array_equal(first.boxes[2], [381, 89, 426, 133])


def test_fixture_ignore_children_and_empty_image(tmp_path: Path) -> None:
    xml = tmp_path / "faces.xml"
    xml.write_text(FIXTURE, encoding="latin-1")
    records = read_dlib_xml(xml)
    assert [r.path for r in records] == [tmp_path / "sub" / "a.jpg", tmp_path / "b.png"]
    a, b = records
    np.testing.assert_array_equal(a.boxes, [[194, 90, 231, 128], [20, 10, 50, 50], [6, 5, 13, 13]])
    assert a.ignore.tolist() == [False, True, False]
    np.testing.assert_array_equal(a.kept_boxes, a.boxes[[0, 2]])
    assert b.boxes.shape == (0, 4) and b.boxes.dtype == np.float32 and b.ignore.shape == (0,)


def one_box(box: str, image: str = "file='a.jpg'") -> str:
    return f"<dataset><images><image {image}><box {box}/></image></images></dataset>"


@pytest.mark.parametrize(
    "text, message",
    [
        ("<dataset><images><image file='a.jpg'><box top='1'/>", "no element found"),
        ("<images><image file='a.jpg'/></images>", "root element is <images>"),
        (one_box("top='1' left='2' width='3' height='4'", image=""), "'file'"),
        (one_box("top='1' left='2' width='3'"), "'height'"),
        (one_box("top='x' left='2' width='3' height='4'"), "top='x'"),
        (one_box("top='1' left='2' width='-3' height='4'"), "negative"),
        (one_box("top='1' left='2' width='3' height='4' ignore='maybe'"), "ignore='maybe'"),
    ],
)
def test_malformed_files_raise_one_line(tmp_path: Path, text: str, message: str) -> None:
    xml = tmp_path / "bad.xml"
    xml.write_text(text)
    with pytest.raises(DatasetError, match=message) as info:
        read_dlib_xml(xml)
    assert "\n" not in str(info.value) and "bad.xml" in str(info.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_dlib_xml(tmp_path / "absent.xml")
    with pytest.raises(DatasetError, match="not found"):
        read_dlib_xml(tmp_path)
