"""MobileNetV2-SSDLite: the paper's size and cost (Sandler et al., Tables 5 and 6), the sources,
and the output shapes. The configurations that reproduce each table are stated in
``edgevision.models.ssdlite``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgevision.models import create_model
from edgevision.models.complexity import count_madds, count_params

torch.set_num_threads(1)

INPUT = (320, 320)


def _heads_and_extras(model) -> tuple[int, int]:
    """Parameters and MAdds at 320 of everything but the MobileNetV2 body (paper Table 5)."""
    body = nn.Sequential(*model.body)
    return (
        count_params(model) - count_params(body),
        count_madds(model, INPUT) - count_madds(body, INPUT),
    )


def test_whole_model_matches_table_6():
    model = create_model("ssdlite_mobilenet_v2")
    # Table 6, MNet V2 + SSDLite: 4.3M parameters, 0.8B MAdds (measured: 4,337,013 / 0.789B).
    assert count_params(model) == pytest.approx(4.3e6, rel=0.05)
    assert count_madds(model, INPUT) == pytest.approx(0.8e9, rel=0.05)


def test_ssdlite_vs_ssd_heads_match_table_5():
    # Table 5, 80 classes at 320: SSD 14.8M / 1.25B, SSDLite 2.1M / 0.35B.
    ssd_params, ssd_madds = _heads_and_extras(
        create_model("ssdlite_mobilenet_v2", num_classes=80, separable=False)
    )
    lite_params, lite_madds = _heads_and_extras(create_model("ssdlite_mobilenet_v2", num_classes=80))
    assert ssd_params == pytest.approx(14.8e6, rel=0.10)  # measured 14.63M
    assert ssd_madds == pytest.approx(1.25e9, rel=0.10)  # measured 1.245B
    assert lite_params == pytest.approx(2.1e6, rel=0.10)  # measured 2.10M
    # The paper's 0.35B is not reproduced (see the module docstring); ours is half of it. Pin
    # the measured value so a change to the heads or extras is noticed.
    assert lite_madds == pytest.approx(176_060_608, rel=1e-3)


def test_table_5_ssdlite_madds_contradict_table_6():
    # The MobileNetV2 body at 320 costs 0.611B whatever the heads. Table 6 puts the whole
    # MNet V2 + SSDLite at 0.8B, which leaves ~0.19B for heads and extras (ours: 0.176B);
    # Table 5's 0.35B would make the whole model ~0.96B (0.611 + 0.35, outside 0.8B +- 15%). So no
    # model fits both tables, and we follow Table 6 (the one the paper's accuracy and latency are
    # reported for).
    model = create_model("ssdlite_mobilenet_v2", num_classes=80)
    body_madds = count_madds(nn.Sequential(*model.body), INPUT)
    assert body_madds == 611_212_800
    assert body_madds + _heads_and_extras(model)[1] == pytest.approx(0.8e9, rel=0.05)


def test_sources_and_outputs():
    model = create_model("ssdlite_mobilenet_v2").eval()
    x = torch.zeros(1, 3, *INPUT)
    with torch.no_grad():
        sources = model.forward_features(x)
        loc, conf = model(x)
    # Expansion of features[14] at stride 16, the 1280-channel layer at 32, then the extras.
    assert [tuple(s.shape[1:]) for s in sources] == [
        (576, 20, 20),
        (1280, 10, 10),
        (512, 5, 5),
        (256, 3, 3),
        (256, 2, 2),
        (128, 1, 1),
    ]
    anchors = 20 * 20 * 3 + (10 * 10 + 5 * 5 + 3 * 3 + 2 * 2 + 1) * 6
    assert loc.shape == (1, anchors, 4)
    assert conf.shape == (1, anchors, 81)


def test_anchor_counts_must_match_the_sources():
    with pytest.raises(ValueError, match="anchors_per_location"):
        create_model("ssdlite_mobilenet_v2", anchors_per_location=(6, 6))
