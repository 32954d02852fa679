"""MobileFaceNet: the paper's size and cost (Chen et al., Sec. 4) and the embedding shape."""

from __future__ import annotations

import pytest
import torch

from edgevision.models import create_model
from edgevision.models.complexity import count_madds, count_params

torch.set_num_threads(1)


def test_size_and_cost_match_the_paper():
    model = create_model("mobilefacenet")
    # Paper: 0.99M parameters (measured 1,003,136 with one PReLU slope per channel) and
    # 221M MAdds at 112x112 (measured 220,965,376).
    assert count_params(model) == pytest.approx(0.99e6, rel=0.02)
    assert count_madds(model, (112, 112)) == pytest.approx(221e6, rel=0.05)


def test_embedding_shape():
    model = create_model("mobilefacenet").eval()
    assert model.fixed_input_size == (112, 112)
    with torch.no_grad():
        assert model.forward_features(torch.zeros(2, 3, 112, 112)).shape == (2, 512, 7, 7)
        assert model(torch.zeros(2, 3, 112, 112)).shape == (2, 128)


def test_input_size_must_be_a_multiple_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("mobilefacenet", input_size=100)
