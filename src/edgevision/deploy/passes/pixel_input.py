"""Pixel input: the plan takes ``(N, H, W, 3)`` uint8 pixels and does the model's preprocessing.

TensorRT lets a network take int8 ``HWC`` input (``--inputIOFormats=int8:hwc``) so that an image
goes from the camera to the first convolution without a float copy. This module does the same to
an ONNX graph whose image feeds only convolutions (and shape readers):

- :func:`take_pixels` (fp32, before quantisation): the input becomes ``pixels`` ``(N, H, W, 3)``
  uint8 in the network's channel order, then ``Transpose -> Cast -> Sub(z)``: the centred pixels
  ``p - z`` with one integer ``z`` (the mean of the per-channel means). The mean and std are folded
  into the first convolutions: ``W' = W / std_c`` and ``b' = b + sum W'[:, c] * (z - mean_c)``.
  Exact wherever a filter does not reach the zero padding; there the padded value becomes the
  pixel ``z`` instead of ``mean_c`` (FaceBoxes: at most 11 of 255 levels; tested);
- :func:`read_pixels_quantized` (after quantisation): with the centred tensor's range set to
  ``[-z, 255 - z]`` its quantiser is the identity on the pixels (scale 1, zero point ``z``), so
  ``Cast -> Sub -> QuantizeLinear`` is removed and the dequantiser reads the transposed pixels.
  ONNX Runtime then cancels the ``Transpose`` against its NHWC layout for ``QLinearConv``: the
  image's ``QuantizeLinear`` and layout ``Transpose`` are gone (docs/benchmarks.md times the int8
  plan with and without pixel input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.graph import NameAllocator, consumers, producers, rebuild
from edgevision.deploy.passes.conv import constant_convs, conv_with
from edgevision.deploy.passes.report import PassReport
from edgevision.errors import ConfigError

PIXELS = "pixels"  # the input's name in a pixel plan


@dataclass(frozen=True)
class PixelInput:
    """What :func:`take_pixels` made: the model, its report, the float pixels (``as_float``) and
    the centred pixels ``p - z`` the convolutions read (``centred``)."""

    model: onnx.ModelProto
    report: PassReport
    as_float: str
    centred: str
    zero_point: int

    @property
    def centred_range(self) -> tuple[float, float]:
        return float(-self.zero_point), float(255 - self.zero_point)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The exact ``(min, max)`` of the two float tensors the pass adds, for calibration."""
        return {self.as_float: (0.0, 255.0), self.centred: self.centred_range}


def take_pixels(model: onnx.ModelProto, preprocessing: Preprocessing) -> PixelInput:
    """``model`` (one ``(N, 3, H, W)`` float input, ``preprocessing`` applied) taking uint8 pixels.

    Raises:
        ConfigError: the model has more than one input, its input is not ``(N, 3, H, W)``, or a
            node other than a constant ungrouped ``Conv`` or a ``Shape`` reads it.
    """
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise ConfigError(f"pixel input needs a model with one input, this one has {len(inputs)}")
    image = inputs[0]
    dims = list(image.type.tensor_type.shape.dim)
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise ConfigError(f"pixel input needs an (N, 3, H, W) image input; {image.name!r} is not")
    names_in_use = {value.name for value in graph.input} | {out for node in graph.node for out in node.output}
    if PIXELS in names_in_use:
        raise ConfigError(f"pixel input names its input {PIXELS!r}, which the model already uses")
    convs = constant_convs(model)
    readers = consumers(graph).get(image.name, [])
    for index in readers:
        node = graph.node[index]
        if node.op_type != "Shape" and (index not in convs or convs[index].group != 1):
            raise ConfigError(
                f"pixel input folds the preprocessing into convolutions, but {node.op_type} "
                f"{node.name!r} reads the image"
            )
    names = NameAllocator(model)
    mean = np.array(preprocessing.mean, np.float64)
    std = np.array(preprocessing.std, np.float64)
    zero_point = int(np.clip(np.round(mean.mean()), 0, 255))
    nchw, as_float, centred = names("pixels_nchw"), names("pixels_float"), names("pixels_centred")
    z_name = names("pixels_zero_point")
    prologue = [
        helper.make_node("Transpose", [PIXELS], [nchw], name=names("pixels_to_nchw"), perm=[0, 3, 1, 2]),
        helper.make_node("Cast", [nchw], [as_float], name=names("pixels_cast"), to=TensorProto.FLOAT),
        helper.make_node("Sub", [as_float, z_name], [centred], name=names("pixels_centre")),
    ]
    new_values: dict[str, np.ndarray] = {z_name: np.array(zero_point, np.float32)}
    nodes, details = [], []
    for index, node in enumerate(graph.node):
        if index in readers and node.op_type == "Shape":
            node = _reading(node, image.name, nchw)
        elif index in readers:
            conv = convs[index]
            weight = conv.weight / std.reshape(1, 3, 1, 1)
            bias = conv.bias + np.einsum("ochw,c->o", weight, zero_point - mean)
            node = _reading(
                conv_with(conv, weight, bias, node.output[0], names, new_values), image.name, centred
            )
            details.append(
                f"{conv.node.name or node.output[0]}: mean {mean.round(2).tolist()} and std folded"
            )
        nodes.append(node)
    new = rebuild(model, [*prologue, *nodes], new_values)
    new_input = helper.make_tensor_value_info(
        PIXELS, TensorProto.UINT8, [_dim(dims[0]), _dim(dims[2]), _dim(dims[3]), 3]
    )
    position = [value.name for value in new.graph.input].index(image.name)
    new.graph.input.remove(new.graph.input[position])
    new.graph.input.insert(position, new_input)
    details.insert(
        0, f"input {image.name!r} (N, 3, H, W) float -> {PIXELS!r} (N, H, W, 3) uint8, z = {zero_point}"
    )
    return PixelInput(new, PassReport.of("pixel input", model, new, details), as_float, centred, zero_point)


def read_pixels_quantized(model: onnx.ModelProto, pixels: PixelInput) -> onnx.ModelProto:
    """A quantised :func:`take_pixels` model without ``Cast -> Sub -> QuantizeLinear`` on the pixels
    (unchanged when a layer kept in fp32 reads them, e.g. by the per-layer accuracy gate).

    Raises:
        ConfigError: the centred tensor is not quantised with scale 1 and zero point ``z`` (its
            calibrated range was not ``pixels.centred_range``).
    """
    graph = model.graph
    readers, writers = consumers(graph), producers(graph)
    values = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    quantizers = [
        graph.node[i] for i in readers.get(pixels.centred, []) if graph.node[i].op_type == "QuantizeLinear"
    ]
    if len(quantizers) != 1 or len(readers[pixels.centred]) != 1:
        return model  # a layer kept in fp32 reads the centred pixels: they stay Cast -> Sub
    quantizer = quantizers[0]
    scale, zero = values[quantizer.input[1]], values[quantizer.input[2]]
    if float(scale) != 1.0 or int(zero) != pixels.zero_point or zero.dtype != np.uint8:
        raise ConfigError(
            f"the pixels are quantised with scale {float(scale)} and zero point {int(zero)}, not 1 and "
            f"{pixels.zero_point}: their range must be {pixels.centred_range}"
        )
    sub = graph.node[writers[pixels.centred]]
    cast = graph.node[writers[sub.input[0]]]
    nchw = cast.input[0]
    dropped = {id(quantizer), id(sub), id(cast)}
    nodes = []
    for node in graph.node:
        if id(node) in dropped:
            continue
        nodes.append(_reading(node, quantizer.output[0], nchw))
    return rebuild(model, nodes)


def _reading(node: onnx.NodeProto, old: str, new: str) -> onnx.NodeProto:
    """A copy of ``node`` reading ``new`` wherever it read ``old``."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for position, name in enumerate(copy.input):
        if name == old:
            copy.input[position] = new
    return copy


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    """A dimension as ``make_tensor_value_info`` takes it: unnamed dynamic ones stay unnamed."""
    return dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
