"""NASNet-A and the cell machinery it shares with AmoebaNet (layers/nas_ops.py): the genotype
against the reference code, the paper's size and cost, the genotype encoding, cells, ops and
drop-path."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from edgevision.errors import ConfigError
from edgevision.layers.nas_ops import (
    OPS,
    REFERENCE_OP_NAMES,
    Block,
    Cell,
    CellGenotype,
    DropPath,
    FactorizedReduce,
    Genotype,
)
from edgevision.models import create_model
from edgevision.models.complexity import count_madds, count_params
from edgevision.models.nasnet import NASNET_A, PAPER_MADDS, PAPER_PARAMS

torch.set_num_threads(1)

# tensorflow/models research/slim/nets/nasnet/nasnet_utils.py, NasNetANormalCell and
# NasNetAReductionCell: (operations, hiddenstate_indices, used_hiddenstates) as they stand.
REFERENCE_NORMAL = (
    ["separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2", "avg_pool_3x3"]
    + ["none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none"],
    [0, 1, 1, 1, 0, 1, 1, 1, 0, 0],
    [1, 0, 0, 0, 0, 0, 0],
)
REFERENCE_REDUCTION = (
    ["separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2", "avg_pool_3x3"]
    + ["separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2", "max_pool_3x3"],
    [0, 1, 0, 1, 0, 1, 3, 2, 2, 0],
    [1, 1, 1, 0, 0, 0, 0],
)


@pytest.fixture(scope="module")
def mobile():
    return create_model("nasnet_a_mobile")


def test_genotype_is_the_reference_cells():
    assert NASNET_A.normal == CellGenotype.from_reference(*REFERENCE_NORMAL)
    assert NASNET_A.reduction == CellGenotype.from_reference(*REFERENCE_REDUCTION)


def test_mobile_size_and_cost_match_the_paper(mobile):
    params, madds = count_params(mobile), count_madds(mobile, (224, 224))
    # Table 3, NASNet-A (4 @ 1056): 5.3M parameters, 564M multiply-adds.
    assert params == pytest.approx(PAPER_PARAMS["nasnet_a_mobile"], rel=0.03)
    assert madds == pytest.approx(PAPER_MADDS["nasnet_a_mobile"], rel=0.03)
    # Cadene's nasnetamobile (TF's checkpoint converted, 1000 classes) has exactly this many.
    assert params == 5_289_978
    assert madds == 564_767_592
    assert mobile.num_features == 1056


def test_cifar_size_matches_the_paper():
    params = count_params(create_model("nasnet_a_cifar"))
    # Table 1, NASNet-A (6 @ 768): 3.3M parameters.
    assert params == pytest.approx(PAPER_PARAMS["nasnet_a_cifar"], rel=0.03)
    assert params == 3_346_538


@pytest.mark.parametrize(
    ("name", "aux_params"), [("nasnet_a_mobile", 2_411_240), ("nasnet_a_cifar", 1_631_498)]
)
def test_paper_counts_leave_out_the_auxiliary_head(name, aux_params):
    without, with_aux = count_params(create_model(name)), count_params(create_model(name, aux_head=True))
    assert with_aux - without == aux_params
    assert with_aux != pytest.approx(PAPER_PARAMS[name], rel=0.03)


def test_auxiliary_logits_in_training_only():
    model = create_model("nasnet_a_cifar", aux_head=True)
    x = torch.randn(2, 3, 32, 32)
    logits, aux_logits = model.train()(x)
    assert logits.shape == aux_logits.shape == (2, 10)
    assert model.eval()(x).shape == (2, 10)


def test_features_and_logits_shapes(mobile):
    mobile.eval()
    with torch.no_grad():
        features = mobile.forward_features(torch.zeros(1, 3, 96, 128))
        assert features.shape == (1, 1056, 3, 4)
        assert mobile.forward_head(features).shape == (1, 1000)
    assert mobile.default_input_size == (224, 224)


def test_genotype_round_trips_through_a_plain_dict():
    data = NASNET_A.to_dict()
    assert Genotype.from_dict(json.loads(json.dumps(data))) == NASNET_A
    assert data["normal"]["blocks"][0] == {
        "inputs": [0, 1],
        "ops": ["sep_conv_5x5", "sep_conv_3x3"],
        "combine": "add",
    }


@pytest.mark.parametrize(
    ("blocks", "concat"),
    [
        ((Block((0, 1), ("sep_conv_3x3", "conv_9x9")),), (2,)),  # unknown op
        ((Block((0, 2), ("identity", "identity")),), (2,)),  # reads a later state
        ((Block((0, 1), ("identity", "identity"), combine="concat"),), (2,)),
        ((Block((0, 1), ("identity", "identity")),), (3,)),  # concatenates a missing state
        ((Block((0, 1), ("identity", "identity")),), ()),
    ],
)
def test_bad_cells_are_rejected(blocks, concat):
    with pytest.raises(ConfigError):
        CellGenotype(blocks, concat)


def test_every_search_space_op_but_the_dilated_separable_is_named_by_the_reference():
    # NASNet's 13 ops (Sec. 3) and AmoebaNet's dilated separable conv, which the reference lacks.
    assert len(OPS) == 14
    assert set(REFERENCE_OP_NAMES.values()) == set(OPS) - {"dil_sep_conv_3x3"}


@pytest.mark.parametrize(("name", "reach"), [("dil_sep_conv_3x3", 4), ("sep_conv_3x3", 2)])
def test_separable_conv_receptive_field_shows_its_dilation(name, reach):
    # All weights 1 and eval-mode BN: an impulse spreads through the two depthwise 3x3 convs to
    # the offsets they reach, 2 x 1 or 2 x 2 pixels each way, every other one when dilated.
    op = OPS[name](1, 1, 1).eval()
    for conv in op.modules():
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 11, 11)
    x[0, 0, 5, 5] = 1.0
    with torch.no_grad():
        out = op(x)[0, 0]
    assert out.shape == (11, 11)
    rows, cols = (out > 0).nonzero(as_tuple=True)
    dilation = reach // 2
    offsets = sorted({(r - 5) for r in rows.tolist()})
    assert offsets == list(range(-reach, reach + 1, dilation))
    assert sorted({(c - 5) for c in cols.tolist()}) == offsets
    assert int((out > 0).sum()) == len(offsets) ** 2


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_ops_give_filters_at_the_stride(name, stride):
    op = OPS[name](6, 8, stride).eval()
    with torch.no_grad():
        out = op(torch.randn(2, 6, 7, 10))
    assert out.shape == (2, 8, 4 if stride == 2 else 7, 5 if stride == 2 else 10)


@pytest.mark.parametrize("size", [(7, 10), (8, 9)])
def test_factorized_reduce_matches_the_reference_shift(size):
    torch.manual_seed(0)
    reduce = FactorizedReduce(5, 7).eval()
    x = torch.randn(2, 5, *size)
    # nasnet_utils.factorized_reduction: 1x1 "avg pool" stride 2 on x, and on x shifted by one
    # pixel (padded at the bottom right), two convs, concat, BN.
    shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
    paths = [
        F.conv2d(x[:, :, ::2, ::2], reduce.conv1.weight),
        F.conv2d(shifted[:, :, ::2, ::2], reduce.conv2.weight),
    ]
    with torch.no_grad():
        torch.testing.assert_close(reduce(x), reduce.bn(torch.cat(paths, 1)))


@pytest.mark.parametrize(
    ("reduction", "prev_channels", "prev_size", "out_size"),
    [
        (False, 12, (9, 10), (9, 10)),  # normal cell keeps the size
        (False, 20, (18, 20), (9, 10)),  # after a reduction: h_{i-2} is factor-reduced
        (False, None, (9, 10), (9, 10)),  # first cell: its input stands in for h_{i-2}
        (True, 12, (9, 10), (5, 5)),  # reduction cell halves, rounding up
        (True, None, (9, 10), (5, 5)),  # ImageNet stem cell 0
    ],
)
def test_cell_output_shapes(reduction, prev_channels, prev_size, out_size):
    genotype = NASNET_A.reduction if reduction else NASNET_A.normal
    prev_reduced = prev_size != (9, 10)
    cell = Cell(genotype, 16, prev_channels, 8, reduction=reduction, prev_reduced=prev_reduced).eval()
    x = torch.randn(2, 16, 9, 10)
    prev = x if prev_channels is None else torch.randn(2, prev_channels, *prev_size)
    with torch.no_grad():
        out = cell(x, prev)
    assert cell.out_channels == 8 * len(genotype.concat)
    assert out.shape == (2, cell.out_channels, *out_size)


def test_drop_path_drops_whole_examples_in_training_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 2, 2)
    assert torch.equal(drop.eval()(x), x)
    out = drop.train()(x)
    per_example = out.flatten(1)
    assert set(per_example.unique().tolist()) == {0.0, 2.0}
    assert (per_example == per_example[:, :1]).all()  # all or nothing per example


def test_drop_path_schedule_and_eval_determinism():
    torch.manual_seed(0)
    model = create_model("nasnet_a_cifar", drop_path_prob=0.4)
    probs = [cell.drop_path.prob for cell in model.cells]
    assert probs[-1] == pytest.approx(0.4)
    assert probs[0] == pytest.approx(0.4 / len(model.cells))
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first = model(x)
        model.set_drop_path_prob(0.0)
        torch.testing.assert_close(model(x), first, rtol=0, atol=0)
    with pytest.raises(ConfigError):
        model.set_drop_path_prob(1.0)


def test_nasnet_builds_any_genotype_and_nasnet_a_as_the_cifar_model():
    # The search's network with NASNet-A's cells and nasnet_a_cifar's settings is that model.
    settings = {"num_cells": 6, "filters": 32, "num_classes": 10}
    rebuilt = create_model("nasnet", genotype=NASNET_A.to_dict(), **settings)
    assert count_params(rebuilt) == count_params(create_model("nasnet_a_cifar")) == 3_346_538
    assert rebuilt.stem[0].out_channels == 96  # 3F follows F
    # The defaults are the search's proxy child: N = 1, F = 8, stem 3F, two classes, 32x32.
    child = create_model("nasnet", genotype=NASNET_A)
    # N = 1 normal cell per stack and two reduction cells; 6 and 4 states concatenated, F doubling.
    assert [cell.out_channels for cell in child.cells] == [6 * 8, 4 * 16, 6 * 16, 4 * 32, 6 * 32]
    assert child.stem[0].out_channels == 24 and child.default_input_size == (32, 32)
    assert child.aux_head is None and child.classifier[0].p == 0.0
    with torch.no_grad():
        assert child.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    assert create_model("nasnet", stem_filters=10).stem[0].out_channels == 10


@pytest.mark.parametrize(
    ("genotype", "match"),
    [
        ("nasnet_a.json", "genotype must be a Genotype or its dict, got str"),
        ({"normal": NASNET_A.normal.to_dict()}, "genotype lacks reduction"),
    ],
)
def test_nasnet_refuses_what_is_not_a_genotype(genotype, match):
    with pytest.raises(ConfigError, match=match):
        create_model("nasnet", genotype=genotype)
