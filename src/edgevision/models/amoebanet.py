"""AmoebaNet-A: cells found by regularized evolution in the NASNet search space (Real et al., AAAI
2019).

The normal and reduction cells of Fig. 4 as a :class:`~edgevision.layers.nas_ops.Genotype`, in the
reference code's encoding (``tensorflow/tpu`` ``amoeba_net/model_specs.py``, ``amoeba_net_a``),
stacked by :class:`~edgevision.layers.nas_ops.CellNetwork` with NASNet's macro-architecture and
stems (Fig. 4, left). Two settings:

- ``amoebanet_a_cifar``: AmoebaNet-A (N=6, F=32) on CIFAR-10, Table 1: 2.6M parameters.
- ``amoebanet_a_mobile``: AmoebaNet-A (N=4, F=50) on ImageNet 224x224, mobile size (Table 2):
  5.1M parameters (5.06M in the abstract), 555M multiply-adds. Its second stem cell has F/2 = 25
  filters, which the reference's factorized reduction (even filters only) could not build; ours
  splits them 12 + 13, and the counts match the paper's.

As NASNet's, the paper's counts leave out the auxiliary head; it is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edgevision.layers.nas_ops import Block, CellGenotype, CellNetwork, CellNetworkConfig, Genotype
from edgevision.models._registry import register_model

# Fig. 4; states: 0 = h_{i-1}, 1 = h_{i-2}, 2 + k = block k (see nas_ops). The output
# concatenations are the reference's, from its used_hiddenstates masks.
AMOEBANET_A = Genotype(
    normal=CellGenotype(
        blocks=(
            Block((0, 0), ("avg_pool_3x3", "max_pool_3x3")),
            Block((1, 1), ("sep_conv_3x3", "identity")),
            Block((0, 1), ("identity", "avg_pool_3x3")),
            Block((0, 2), ("sep_conv_3x3", "sep_conv_5x5")),
            Block((5, 0), ("avg_pool_3x3", "sep_conv_3x3")),
        ),
        concat=(1, 3, 4, 6),  # h_{i-2} and blocks 1, 2, 4: 4F channels
    ),
    reduction=CellGenotype(
        blocks=(
            Block((1, 0), ("sep_conv_3x3", "avg_pool_3x3")),
            Block((0, 2), ("max_pool_3x3", "sep_conv_7x7")),
            Block((1, 0), ("max_pool_3x3", "max_pool_3x3")),
            Block((4, 0), ("sep_conv_3x3", "conv_1x7_7x1")),
            Block((1, 0), ("avg_pool_3x3", "sep_conv_7x7")),
        ),
        concat=(2, 3, 4, 5, 6),  # every block (blocks 0 and 2 although others read them): 5F
    ),
)

# The paper's size and cost: Table 1 (CIFAR-10) and Table 2 (ImageNet, mobile size).
PAPER_PARAMS = {"amoebanet_a_cifar": 2.6e6, "amoebanet_a_mobile": 5.1e6}
PAPER_MADDS = {"amoebanet_a_mobile": 555e6}


@dataclass(frozen=True)
class AmoebaNetAConfig(CellNetworkConfig):
    """AmoebaNet-A hyper-parameters; defaults are AmoebaNet-A (N=6, F=32) on CIFAR-10 (Table 1).
    The paper trains its CIFAR models as NASNet's, so the rest is NASNet's ``cifar_config``."""

    genotype: Genotype = AMOEBANET_A  # Fig. 4
    num_classes: int = 10  # CIFAR-10 (Table 1)
    num_cells: int = 6  # N = 6 (Table 1)
    filters: int = 32  # F = 32 (Table 1)
    stem: str = "cifar"  # one 3x3 conv (Fig. 4, left; NASNet Fig. 2)
    stem_filters: int = 96  # 3F, NASNet's cifar_config stem_multiplier 3
    dropout: float = 0.0  # none on CIFAR (dense_dropout_keep_prob 1.0)
    drop_path_prob: float = 0.0  # off; the paper trains CIFAR models with ScheduledDropPath
    aux_head: bool = False  # trained with one (loss weight 0.4, model_builder); Table 1 counts without
    input_size: tuple[int, int] = (32, 32)  # CIFAR-10


# AmoebaNet-A (N=4, F=50), the mobile ImageNet model of Table 2, with the ImageNet stem of the
# reference (tpu amoeba_net: stem_reduction_size 32, two reduction cells) and its dropout 0.5
# (imagenet_hparams dense_dropout_keep_prob).
AMOEBANET_A_MOBILE = AmoebaNetAConfig(
    num_classes=1000,
    num_cells=4,
    filters=50,
    stem="imagenet",
    stem_filters=32,
    dropout=0.5,
    input_size=(224, 224),
)


class AmoebaNetA(CellNetwork):
    """AmoebaNet-A; see :class:`~edgevision.layers.nas_ops.CellNetwork` for shapes."""

    def __init__(self, config: AmoebaNetAConfig | None = None) -> None:
        super().__init__(config or AmoebaNetAConfig())


@register_model("amoebanet_a_cifar")
def amoebanet_a_cifar(**overrides: Any) -> AmoebaNetA:
    """AmoebaNet-A (N=6, F=32) for CIFAR-10 with :class:`AmoebaNetAConfig` fields overridden."""
    return AmoebaNetA(replace(AmoebaNetAConfig(), **overrides))


@register_model("amoebanet_a_mobile")
def amoebanet_a_mobile(**overrides: Any) -> AmoebaNetA:
    """AmoebaNet-A (N=4, F=50) for ImageNet with :data:`AMOEBANET_A_MOBILE` fields overridden."""
    return AmoebaNetA(replace(AMOEBANET_A_MOBILE, **overrides))
