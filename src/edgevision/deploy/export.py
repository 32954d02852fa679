"""Export a network to ONNX, and run an exported detector with ONNX Runtime on the CPU.

The exported graph is the network only, e.g. for FaceBoxes ``image (1, 3, H, W)`` float32
mean-subtracted BGR -> ``loc (1, A, 4)`` offsets and ``conf (1, A, 2)`` logits (and, with the
landmark head, ``landmarks (1, A, 10)`` offsets: every name in ``onnx_output_names``), with H and W
dynamic. Anchors, decoding and NMS stay in :class:`edgevision.detection.detector.Detector`, which
runs an :class:`OnnxNetwork` exactly as it runs the torch network.

The exporter is ``torch.export``-based (``dynamo=True``): in torch 2.14 it handles the dynamic H/W
axes (the anchor count comes out as a symbolic expression of them) and gives a smaller graph than
the TorchScript exporter, which is deprecated there. Ops outside ATen (torchvision's
``deform_conv2d``) are translated by :data:`edgevision.deploy.onnx_ops.TRANSLATION_TABLE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from edgevision.data.io import atomic_write
from edgevision.deploy.backends import Session
from edgevision.deploy.onnx_ops import DEFORM_CONV_OPSET, TRANSLATION_TABLE
from edgevision.deploy.plugins import translation_table as plugin_translation_table
from edgevision.deploy.runtime import Engine
from edgevision.errors import ConfigError, InputFileError, ShapeError
from edgevision.layers.deform_conv import DeformConv2d
from edgevision.models.complexity import example_inputs

INPUT_NAME = "image"
DEFAULT_OPSET = 17


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int] = (480, 640),
    dynamic: bool = True,
    opset: int | None = None,
    output_names: Sequence[str] | None = None,
    optimize: bool = True,
    dynamic_batch: bool = False,
) -> Path:
    """Write ``model`` to the ONNX file ``path`` (atomically) and return the path.

    Args:
        model: a network ``(1, 3, H, W) -> tensor or tuple of tensors``; it is exported in eval
            mode and left in the mode it was in. A model with ``example_inputs(batch, size)``
            (R-FCN: image and RoIs) is traced on those, its inputs named by
            ``onnx_input_names``; the inputs after the image get a dynamic first axis.
        path: the ``.onnx`` file to write; its folder is created.
        input_size: ``(H, W)`` of the example input that is traced.
        dynamic: make H and W dynamic axes (named ``height`` and ``width``); else the file only
            takes ``input_size``.
        opset: the default-domain ONNX opset of the file; ``None`` is 17, or 19 (the first with
            ``DeformConv``) when ``model`` has a :class:`DeformConv2d`.
        output_names: one name per output; ``None`` takes ``model.onnx_output_names`` (FaceBoxes:
            ``("loc", "conf")``) or else ``output_0``, ``output_1``, ...
        dynamic_batch: make the image's batch axis dynamic (named ``batch``; traced at batch 2,
            as torch.export specialises a size of 1).
        optimize: run the exporter's own graph optimiser (constant folding, BN folding); False
            writes the raw graph, which the builder's passes (:mod:`edgevision.deploy.passes`)
            start from, as TensorRT starts from an unoptimised import.

    Raises:
        ShapeError: ``input_size`` is not two sizes of at least 2 pixels (torch.export
            specialises sizes 0 and 1).
        ConfigError: ``opset`` is below 19 for a model with a :class:`DeformConv2d`, the
            exporter could not produce ``opset``, or the input or output names do not match the
            model's inputs and outputs. Both are ``ValueError`` s.
    """
    if len(input_size) != 2 or min(input_size) < 2:
        raise ShapeError(f"input_size must be (H, W) with both >= 2, got {input_size}")
    deformable = any(isinstance(m, DeformConv2d) for m in model.modules())
    if opset is None:
        opset = DEFORM_CONV_OPSET if deformable else DEFAULT_OPSET
    elif deformable and opset < DEFORM_CONV_OPSET:
        raise ConfigError(f"a model with DeformConv2d needs opset >= {DEFORM_CONV_OPSET}, got {opset}")
    examples = example_inputs(model, input_size)  # on the model's device
    if dynamic_batch:
        if len(examples) != 1:
            raise ConfigError("a dynamic batch needs a model with one (image) input")
        examples = (examples[0].expand(2, *examples[0].shape[1:]).contiguous(),)
    names = list(getattr(model, "onnx_input_names", None) or [INPUT_NAME])
    if len(names) != len(examples):
        raise ConfigError(f"the model takes {len(examples)} inputs, but names {len(names)}: {names}")
    image_axes = {2: torch.export.Dim("height"), 3: torch.export.Dim("width")} if dynamic else {}
    if dynamic_batch:
        image_axes[0] = torch.export.Dim("batch")
    # Inputs after the image (R-FCN's RoIs) have a dynamic count.
    other_axes = [{0: torch.export.Dim(f"num_{name}")} for name in names[1:]]
    dynamic_shapes = (image_axes, *other_axes) if dynamic or dynamic_batch else None
    was_training = model.training
    model.eval()
    try:
        program = torch.onnx.export(
            model,
            examples,
            dynamo=True,
            opset_version=opset,
            input_names=names,
            dynamic_shapes=dynamic_shapes,
            custom_translation_table={**TRANSLATION_TABLE, **plugin_translation_table()},
            optimize=optimize,
            verbose=False,
        )
    finally:
        model.train(was_training)
    outputs = program.model.graph.outputs
    names = output_names or getattr(model, "onnx_output_names", None)
    names = names or [f"output_{i}" for i in range(len(outputs))]
    if len(names) != len(outputs):
        raise ConfigError(f"the model has {len(outputs)} outputs, got {len(names)} output names {names}")
    for value, name in zip(outputs, names):
        value.name = name
    proto = program.model_proto
    # Below opset 18 the exporter converts down, and keeps 18 without raising when it cannot.
    produced = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    if produced != opset:
        raise ConfigError(f"the ONNX exporter produced opset {produced}, not the requested {opset}")
    with atomic_write(path) as handle:
        handle.write(proto.SerializeToString())
    return Path(path)


class OnnxNetwork:
    """An exported detector network run by ONNX Runtime (or a plan's engine) in place of the
    torch network: ``Detector(model, network=OnnxNetwork(path, model))`` detects with ONNX Runtime
    and the model's own decoding.

    Shape: the network's input with a batch of 1 (``(1, 3, H, W)`` float32, or ``(1, H, W, 3)``
    uint8 pixels for a pixel-input plan) -> its outputs in ``model.onnx_output_names`` order
    (FaceBoxes: ``loc (1, A, 4)``, ``conf (1, A, 2)``), float32 tensors on the input's device.

    Args:
        source: an ONNX file written by :func:`export_onnx`, a loaded plan
            (:class:`edgevision.deploy.runtime.Engine`), or an open session (ONNX Runtime's, or a
            plan backend's :class:`edgevision.deploy.backends.Session`).
        model: the detector the file was exported from (only its output names are used).
        intra_op_num_threads: threads per operator for a file; 0 is ONNX Runtime's default (one
            per physical core).

    Raises:
        InputFileError: ``source`` is missing, or is not a network with one input and the
            detector's outputs (the message names the file or plan).
    """

    def __init__(
        self, source: str | Path | Engine | Session, model: nn.Module, intra_op_num_threads: int = 0
    ) -> None:
        # A plan runs through its engine, whose input checks give a one-line ShapeError for a size
        # the plan was not built for.
        self.engine = source if isinstance(source, Engine) else None
        if isinstance(source, str | Path):
            self.session, named = _open_session(source, intra_op_num_threads), f"the ONNX file {source}"
        elif isinstance(source, Engine):
            self.session, named = source.session, source.name
        else:
            self.session, named = source, "the session's model"
        self.output_names = tuple(model.onnx_output_names)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        found = tuple(output.name for output in outputs)
        if len(inputs) != 1 or sorted(found) != sorted(self.output_names):
            raise InputFileError(
                f"{named} is not a {type(model).__name__} network: it has {len(inputs)} input(s) and "
                f"the outputs {list(found)}; the detector has 1 input and the outputs "
                f"{list(self.output_names)}"
            )
        self.input_name = inputs[0].name

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.ndim != 4 or x.shape[0] != 1:
            raise ShapeError(f"expected one image, a (1, ...) 4-D input, got {tuple(x.shape)}")
        array = np.ascontiguousarray(x.detach().cpu().numpy())
        if self.engine is not None:
            by_name = self.engine.run(array)
        else:
            by_name = dict(
                zip(self.output_names, self.session.run(list(self.output_names), {self.input_name: array}))
            )
        return tuple(torch.from_numpy(by_name[name]).to(x.device) for name in self.output_names)


def _open_session(path: str | Path, intra_op_num_threads: int) -> ort.InferenceSession:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such ONNX file: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_num_threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for every bad file
        raise InputFileError(f"not a loadable ONNX model: {path} ({type(error).__name__})") from error
