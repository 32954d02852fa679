"""Builder passes on an ONNX graph, as TensorRT's builder runs them before choosing kernels.

Each pass is a pure function ``model -> (new model, PassReport)``; :func:`run_passes` runs a list
of them in order and :func:`format_reports` prints the builder's log (layers before and after
each pass). ``DEFAULT_PASSES`` is the pipeline the builder runs for fp32 and ``INT8_PASSES`` for
int8: every pass keeps the outputs of the graph it is given (tests hold them to 1e-5 relative on
FaceBoxes and MobileNetV2).

Two rewrites are exact and available through this API but in neither list, because on this CPU
with ONNX Runtime 1.32 they made FaceBoxes slower when measured (once; docs/benchmarks.md):
:func:`fuse_crelu` (the doubled convolution costs more than the ``Neg`` + ``Concat`` it removes)
and :func:`space_to_depth_stem` (ONNX Runtime's blocked kernels already run the 3-channel 7x7/4
stem well; the rewrite adds a Pad and a SpaceToDepth).

``INT8_PASSES`` adds two rewrites that pay only once the graph is quantised (docs/benchmarks.md):
:func:`fold_avgpool_into_conv` (a ``QLinearAveragePool`` is slow; in fp32 the 3x3 conv costs more
than pool + 1x1 conv) and :func:`crelu_as_conv1x1`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import onnx

from edgevision.deploy.passes.avgpool_conv import fold_avgpool_into_conv
from edgevision.deploy.passes.concat_elimination import analyse_concats
from edgevision.deploy.passes.crelu import crelu_as_conv1x1, fuse_crelu
from edgevision.deploy.passes.dead_layers import eliminate_dead_layers
from edgevision.deploy.passes.fold_batchnorm import fold_batchnorm
from edgevision.deploy.passes.fold_bias import fold_bias
from edgevision.deploy.passes.fold_constants import fold_constants
from edgevision.deploy.passes.fuse_horizontal import fuse_horizontal
from edgevision.deploy.passes.fusion_groups import find_fusion_groups
from edgevision.deploy.passes.report import PassReport
from edgevision.deploy.passes.space_to_depth import space_to_depth_stem

Pass = Callable[[onnx.ModelProto], tuple[onnx.ModelProto, PassReport]]

_SIMPLIFY: tuple[Pass, ...] = (fold_constants, eliminate_dead_layers, fold_batchnorm, fold_bias)
_FUSE: tuple[Pass, ...] = (fuse_horizontal, find_fusion_groups, analyse_concats)

DEFAULT_PASSES: tuple[Pass, ...] = (*_SIMPLIFY, *_FUSE)
INT8_PASSES: tuple[Pass, ...] = (*_SIMPLIFY, fold_avgpool_into_conv, crelu_as_conv1x1, *_FUSE)


def run_passes(
    model: onnx.ModelProto, passes: Sequence[Pass] = DEFAULT_PASSES
) -> tuple[onnx.ModelProto, list[PassReport]]:
    """Run ``passes`` in order; returns the final model and one report per pass."""
    reports = []
    for builder_pass in passes:
        model, report = builder_pass(model)
        reports.append(report)
    return model, reports


def format_reports(reports: Sequence[PassReport]) -> str:
    """The builder log: one line per pass (layers before -> after) and its details indented."""
    return "\n".join(str(report) for report in reports)


__all__ = [
    "DEFAULT_PASSES",
    "INT8_PASSES",
    "crelu_as_conv1x1",
    "fold_avgpool_into_conv",
    "fuse_crelu",
    "space_to_depth_stem",
    "Pass",
    "PassReport",
    "format_reports",
    "run_passes",
]
