"""The dlib peer on real faces: ORL people are separated by dlib's own 0.6 rule."""

from pathlib import Path

import numpy as np
import pytest

from edgevision.data.io import read_image
from edgevision.data.paths import default_data_dir
from edgevision.errors import ShapeError
from edgevision.recognition.dlib_peer import DlibEmbedder, dlib_available

ORL = default_data_dir() / "orl_faces"
pytestmark = [
    pytest.mark.skipif(not dlib_available(), reason="dlib peer not installed (edgevision[dlib])"),
    pytest.mark.skipif(not ORL.is_dir(), reason=f"ORL faces not found at {ORL}"),
]


def _orl(person: int, image: int) -> np.ndarray:
    return read_image(Path(ORL, f"s{person}", f"{image}.pgm"))


def test_same_person_is_closer_than_another():
    dlib = DlibEmbedder()
    a, b, other = (dlib.embed_crop(_orl(p, i)) for p, i in ((3, 1), (3, 2), (7, 1)))
    assert a.shape == (128,) and a.dtype == np.float32
    assert np.linalg.norm(a - b) < 0.6 < np.linalg.norm(a - other)


def test_grey_and_bgr_give_the_same_descriptor():
    dlib = DlibEmbedder()
    image = _orl(3, 1)
    box = np.array([0, 0, image.shape[1] - 1, image.shape[0] - 1])
    whole = dlib.embed(image, box)
    np.testing.assert_allclose(whole, dlib.embed(image[:, :, 0], box), atol=1e-6)  # grey in: same
    with pytest.raises(ShapeError):
        dlib.embed(image, np.array([0, 0, np.nan, 5]))
