"""NASNet: the search space's network for any genotype, and NASNet-A, the cells found by
reinforcement learning on CIFAR-10 (Zoph et al., CVPR 2018).

``nasnet`` builds any :class:`~edgevision.layers.nas_ops.Genotype` (or its ``to_dict``) with
the architecture search's child-network defaults, :class:`NASNetConfig`: the CIFAR stem, N = 1,
F = 8, as the papers' small proxy children (NASNet Sec. 4.1; AmoebaNet Sec. 4), for 32x32 inputs.

The normal and reduction cells of Fig. 4 as a :class:`~edgevision.layers.nas_ops.Genotype`, in the
reference code's encoding (``nasnet_utils.NasNetANormalCell`` / ``NasNetAReductionCell``), stacked
by :class:`~edgevision.layers.nas_ops.CellNetwork` as Fig. 2. Two settings:

- ``nasnet_a_mobile``: NASNet-A (4 @ 1056), ImageNet 224x224, Table 3: 5.3M parameters, 564M
  multiply-adds. Ours has 5,289,978 parameters with a 1000-class classifier, exactly as Cadene's
  ``nasnetamobile`` (the TF weights converted), and 564.8M MAdds as ``count_madds`` counts them
  (563.6M without the border row and column that ``FactorizedReduce`` computes and drops).
- ``nasnet_a_cifar``: NASNet-A (6 @ 768), CIFAR-10 32x32, Table 1: 3.3M parameters.

The paper's counts leave out the auxiliary head (which the reference builds only in training):
with it the mobile model has 2.4M more parameters and the CIFAR one 1.6M. It is off by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from edgevision.errors import ConfigError
from edgevision.layers.nas_ops import Block, CellGenotype, CellNetwork, CellNetworkConfig, Genotype
from edgevision.models._registry import register_model

# Fig. 4; states: 0 = h_{i-1}, 1 = h_{i-2}, 2 + k = block k (see nas_ops). The output
# concatenations are the reference's, from its used_hiddenstates masks.
NASNET_A = Genotype(
    normal=CellGenotype(
        blocks=(
            Block((0, 1), ("sep_conv_5x5", "sep_conv_3x3")),
            Block((1, 1), ("sep_conv_5x5", "sep_conv_3x3")),
            Block((0, 1), ("avg_pool_3x3", "identity")),
            Block((1, 1), ("avg_pool_3x3", "avg_pool_3x3")),
            Block((0, 0), ("sep_conv_3x3", "identity")),
        ),
        concat=(1, 2, 3, 4, 5, 6),  # h_{i-2} and every block: 6F channels
    ),
    reduction=CellGenotype(
        blocks=(
            Block((0, 1), ("sep_conv_5x5", "sep_conv_7x7")),
            Block((0, 1), ("max_pool_3x3", "sep_conv_7x7")),
            Block((0, 1), ("avg_pool_3x3", "sep_conv_5x5")),
            Block((3, 2), ("identity", "avg_pool_3x3")),
            Block((2, 0), ("sep_conv_3x3", "max_pool_3x3")),
        ),
        concat=(3, 4, 5, 6),  # blocks 1-4 (block 1 although block 3 reads it): 4F channels
    ),
)

# The paper's size and cost: Table 3 (ImageNet, mobile setting) and Table 1 (CIFAR-10).
PAPER_PARAMS = {"nasnet_a_mobile": 5.3e6, "nasnet_a_cifar": 3.3e6}
PAPER_MADDS = {"nasnet_a_mobile": 564e6}


@dataclass(frozen=True)
class NASNetAConfig(CellNetworkConfig):
    """NASNet-A hyper-parameters; defaults are NASNet-A Mobile, "4 @ 1056" (Table 3), with the
    reference's ``mobile_imagenet_config`` where the paper is silent."""

    genotype: Genotype = NASNET_A  # Fig. 4
    num_classes: int = 1000  # ImageNet (Table 3)
    num_cells: int = 4  # N = 4 (Table 3, "4 @ 1056")
    filters: int = 44  # F = 44: 1056 penultimate filters = 24F (Table 3; num_conv_filters 44)
    stem: str = "imagenet"  # 3x3 conv stride 2, two reduction cells (Fig. 2)
    stem_filters: int = 32  # stem_multiplier 1.0 x 32 (mobile_imagenet_config)
    dropout: float = 0.5  # dense_dropout_keep_prob 0.5 (mobile_imagenet_config)
    drop_path_prob: float = 0.0  # mobile_imagenet_config keeps every path (drop_path_keep_prob 1.0)
    aux_head: bool = False  # trained with one (loss weight 0.4, reference notes); Table 3 counts without
    input_size: tuple[int, int] = (224, 224)  # mobile setting (Table 3)


# NASNet-A (6 @ 768) on CIFAR-10 (Table 1), reference cifar_config: stem 3x3 conv of 3F = 96, no
# dropout. Drop-path stays off by default; the paper trains with ScheduledDropPath at 0.4 (keep 0.6).
NASNET_A_CIFAR = NASNetAConfig(
    num_classes=10,
    num_cells=6,
    filters=32,
    stem="cifar",
    stem_filters=96,
    dropout=0.0,
    input_size=(32, 32),
)


class NASNetA(CellNetwork):
    """NASNet-A; see :class:`~edgevision.layers.nas_ops.CellNetwork` for shapes."""

    def __init__(self, config: NASNetAConfig | None = None) -> None:
        super().__init__(config or NASNetAConfig())


@register_model("nasnet_a_mobile")
def nasnet_a_mobile(**overrides: Any) -> NASNetA:
    """NASNet-A Mobile (4 @ 1056) with :class:`NASNetAConfig` fields overridden by keyword."""
    return NASNetA(replace(NASNetAConfig(), **overrides))


@register_model("nasnet_a_cifar")
def nasnet_a_cifar(**overrides: Any) -> NASNetA:
    """NASNet-A (6 @ 768) for CIFAR-10 with :data:`NASNET_A_CIFAR` fields overridden by keyword."""
    return NASNetA(replace(NASNET_A_CIFAR, **overrides))


@dataclass(frozen=True)
class NASNetConfig(CellNetworkConfig):
    """A child network of the architecture search: any genotype, small and cheap to train on a CPU
    (the papers' proxy setting: N and F small, a few epochs)."""

    genotype: Genotype = NASNET_A  # overridden by the search; NASNet-A so the bare name builds
    num_classes: int = 2  # the search's proxy task: face / non-face patches
    num_cells: int = 1  # N = 1 (the papers search with N small)
    filters: int = 8  # F = 8
    stem: str = "cifar"  # 32x32 patches: one 3x3 conv
    stem_filters: int = 24  # 3F, NASNet's cifar_config stem_multiplier 3 (follows F when not given)
    dropout: float = 0.0  # none
    drop_path_prob: float = 0.0  # none
    aux_head: bool = False  # none
    input_size: tuple[int, int] = (32, 32)


class NASNet(CellNetwork):
    """A network of NASNet's search space; see :class:`~edgevision.layers.nas_ops.CellNetwork`."""

    def __init__(self, config: NASNetConfig | None = None) -> None:
        super().__init__(config or NASNetConfig())


@register_model("nasnet")
def nasnet(*, genotype: Genotype | Mapping[str, Any] = NASNET_A, **overrides: Any) -> NASNet:
    """Any genotype (a :class:`Genotype` or its ``to_dict``) with :class:`NASNetConfig` fields
    overridden by keyword; ``stem_filters`` is 3 x ``filters`` unless given.

    Raises:
        ConfigError: ``genotype`` is neither, or malformed (:meth:`Genotype.from_dict`).
    """
    if isinstance(genotype, Mapping):
        genotype = Genotype.from_dict(genotype)
    elif not isinstance(genotype, Genotype):
        raise ConfigError(f"genotype must be a Genotype or its dict, got {type(genotype).__name__}")
    overrides.setdefault("stem_filters", 3 * overrides.get("filters", NASNetConfig.filters))
    return NASNet(replace(NASNetConfig(), genotype=genotype, **overrides))
