"""AmoebaNet-A: the genotype against the reference code and the paper's size and cost (the cell
machinery it shares with NASNet-A is tested in test_nasnet.py)."""

from __future__ import annotations

import pytest
import torch

from edgevision.layers.nas_ops import CellGenotype
from edgevision.models import create_model
from edgevision.models.amoebanet import AMOEBANET_A, PAPER_MADDS, PAPER_PARAMS
from edgevision.models.complexity import count_madds, count_params

torch.set_num_threads(1)

# tensorflow/tpu models/official/amoeba_net/model_specs.py, "amoeba_net_a":
# (operations, hiddenstate_indices, used_hiddenstates) as they stand.
REFERENCE_NORMAL = (
    ["avg_pool_3x3", "max_pool_3x3", "separable_3x3_2", "none", "none"]
    + ["avg_pool_3x3", "separable_3x3_2", "separable_5x5_2", "avg_pool_3x3", "separable_3x3_2"],
    [0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
    [1, 0, 1, 0, 0, 1, 0],
)
REFERENCE_REDUCTION = (
    ["separable_3x3_2", "avg_pool_3x3", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3"]
    + ["max_pool_3x3", "separable_3x3_2", "1x7_7x1", "avg_pool_3x3", "separable_7x7_2"],
    [1, 0, 0, 2, 1, 0, 4, 0, 1, 0],
    [1, 1, 0, 0, 0, 0, 0],
)


def test_genotype_is_the_reference_cells():
    assert AMOEBANET_A.normal == CellGenotype.from_reference(*REFERENCE_NORMAL)
    assert AMOEBANET_A.reduction == CellGenotype.from_reference(*REFERENCE_REDUCTION)


@pytest.mark.parametrize(
    ("filters", "paper_params", "params"),
    [
        (32, PAPER_PARAMS["amoebanet_a_cifar"], 2_567_754),  # Table 1, AmoebaNet-A (N=6, F=32): 2.6M
        (36, 3.2e6, 3_215_218),  # Table 1, AmoebaNet-A (N=6, F=36): 3.2M
    ],
)
def test_cifar_size_matches_the_paper(filters, paper_params, params):
    count = count_params(create_model("amoebanet_a_cifar", filters=filters))
    assert count == pytest.approx(paper_params, rel=0.03)
    assert count == params


def test_mobile_size_and_cost_match_the_paper():
    model = create_model("amoebanet_a_mobile")
    params, madds = count_params(model), count_madds(model, (224, 224))
    # Table 2, AmoebaNet-A (N=4, F=50): 5.1M parameters (5.06M in the abstract), 555M MAdds.
    assert params == pytest.approx(PAPER_PARAMS["amoebanet_a_mobile"], rel=0.03)
    assert madds == pytest.approx(PAPER_MADDS["amoebanet_a_mobile"], rel=0.03)
    assert params == 5_086_930
    assert madds == 555_709_712


def test_paper_count_leaves_out_the_auxiliary_head():
    with_aux = count_params(create_model("amoebanet_a_cifar", aux_head=True))
    assert with_aux - 2_567_754 == 1_615_114
    assert with_aux != pytest.approx(PAPER_PARAMS["amoebanet_a_cifar"], rel=0.03)


def test_cifar_shapes():
    model = create_model("amoebanet_a_cifar").eval()
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, 32, 32))
        assert features.shape == (1, 512, 8, 8)  # 4 states of 4F in the last stack, H/4
        assert model.forward_head(features).shape == (1, 10)
