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


def test_variants_remove_the_layers_sec_4_2_names():
    # Derived by hand from MobileFaceNet's 1,003,136 (Sec. 4.2's definitions):
    # -M: 112x96 makes GDConv 7x6 (512*(49-42) = 3,584 fewer weights) and drops the linear 1x1
    #     after it (512*128 weights + BN 2*128 = 65,792).
    # -S: also drops the conv1x1 128->512 before GDConv (65,536 + BN 1,024 + PReLU 512 = 67,072);
    #     GDConv then runs on 128 channels (128*42 + BN 256 = 5,632 instead of 512*42 + 1,024).
    m = 1_003_136 - 512 * 7 - (512 * 128 + 2 * 128)
    s = m - (128 * 512 + 2 * 512 + 512) - (512 * 42 + 2 * 512) + (128 * 42 + 2 * 128)
    for name, params, embedding in (("mobilefacenet_m", m, 512), ("mobilefacenet_s", s, 128)):
        model = create_model(name).eval()
        assert model.fixed_input_size == (112, 96)
        assert count_params(model) == params
        with torch.no_grad():
            assert model(torch.zeros(2, 3, 112, 96)).shape == (2, embedding)
    assert (m, s) == (933_760, 849_792)


def test_input_size_must_be_a_multiple_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("mobilefacenet", input_size=(112, 100))
