"""Space-to-depth stem: a strided convolution on a few channels (FaceBoxes' 7x7/4 on the RGB
image) as ``SpaceToDepth`` followed by a small stride-1 convolution on ``s*s`` times the channels.

A conv over 3 channels gives a CPU's vector units (and INT8's 4-byte dot products) almost nothing
to work on along the channel axis; rearranged, the same arithmetic runs on 48 channels (stride 4).
Exact for a "same"-padded odd kernel (``K = 2P + 1``) with stride ``s``: output ``i`` reads rows
``s*i - P + t``; in blocks of ``s`` rows those are blocks ``i - top .. i + bottom`` with
``top = ceil(P / s)``, ``bottom = floor((K - 1 - P) / s)``, and the new filter tap ``(b, u)``
(block ``b``, row ``u`` within it) is the old tap ``t = s*(b - top) + u + P`` (zero where
``t`` falls outside ``[0, K)``). The input is zero-padded at the bottom/right to a multiple of
``s`` (what the conv's own padding would read there), so any H, W work and the output size,
``ceil(H / s)``, is unchanged.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgevision.deploy.graph import NameAllocator, attributes, replace_nodes
from edgevision.deploy.passes.conv import ConstantConv, constant_convs
from edgevision.deploy.passes.report import PassReport

MAX_INPUT_CHANNELS = 4  # only stems this narrow (on RGB pixels) are rewritten


def space_to_depth_stem(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    names = NameAllocator(model)
    replacement: dict[int, list[onnx.NodeProto]] = {}
    new_values: dict[str, np.ndarray] = {}
    details = []
    for index, conv in constant_convs(model).items():
        stride = _eligible_stride(conv)
        if stride is None:
            continue
        replacement[index] = _rewrite(conv, stride, names, new_values)
        channels, kernel = conv.weight.shape[1], conv.weight.shape[2]
        details.append(
            f"{conv.node.name}: {kernel}x{kernel}/{stride} conv on {channels} channels -> "
            f"SpaceToDepth({stride}) + conv on {channels * stride * stride}"
        )
    new = replace_nodes(model, replacement, (), new_values)
    return new, PassReport.of("space-to-depth stem", model, new, details)


def _eligible_stride(conv: ConstantConv) -> int | None:
    """The stride of a conv this pass rewrites exactly, else None."""
    attrs = attributes(conv.node)
    out_channels, in_channels, k_h, k_w = conv.weight.shape
    strides = list(attrs.get("strides", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    exact = (
        conv.group == 1
        and in_channels <= MAX_INPUT_CHANNELS
        and k_h == k_w
        and len(strides) == 2
        and strides[0] == strides[1] >= 2
        and pads == [k_h // 2] * 4
        and k_h % 2 == 1
        and list(attrs.get("dilations", [1, 1])) == [1, 1]
        and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    )
    return strides[0] if exact else None


def stem_weight(weight: np.ndarray, stride: int) -> tuple[np.ndarray, int, int]:
    """``(C_out, C, K, K)`` filters of a stride-``s`` "same" conv -> ``(C_out, C*s*s, n, n)``
    filters over ``SpaceToDepth(s)`` channels ``(u*s + v)*C + c``, with the block padding
    ``(top, bottom)``."""
    out_channels, channels, kernel, _ = weight.shape
    pad = kernel // 2
    top, bottom = -(-pad // stride), (kernel - 1 - pad) // stride
    blocks = top + bottom + 1
    new = np.zeros((out_channels, channels * stride * stride, blocks, blocks), dtype=weight.dtype)
    for bi in range(blocks):
        for bj in range(blocks):
            for u in range(stride):
                for v in range(stride):
                    t_r, t_c = stride * (bi - top) + u + pad, stride * (bj - top) + v + pad
                    if 0 <= t_r < kernel and 0 <= t_c < kernel:
                        block = (u * stride + v) * channels
                        new[:, block : block + channels, bi, bj] = weight[:, :, t_r, t_c]
    return new, top, bottom


def _rewrite(
    conv: ConstantConv, stride: int, names: NameAllocator, new_values: dict[str, np.ndarray]
) -> list[onnx.NodeProto]:
    """Pad to a multiple of ``stride`` (bottom/right), SpaceToDepth, and the stride-1 conv."""
    base = conv.node.name or conv.node.output[0]
    source = conv.node.input[0]
    weight, top, bottom = stem_weight(conv.weight, stride)
    values = {
        names(f"{base}.s2d_hw_start"): np.array([2], np.int64),
        names(f"{base}.s2d_hw_end"): np.array([4], np.int64),
        names(f"{base}.s2d_stride"): np.array(stride, np.int64),
        names(f"{base}.s2d_zeros"): np.zeros(6, np.int64),
        names(f"{base}.s2d_weight"): weight.astype(np.float32),
        names(f"{base}.s2d_bias"): conv.bias.astype(np.float32),
    }
    start, end, step, zeros, weight_name, bias_name = values
    new_values.update(values)
    shape, hw, rem, short, pad_hw, pads, padded, rearranged = (
        names(f"{base}.s2d_{part}")
        for part in ("shape", "hw", "rem", "short", "pad_hw", "pads", "padded", "input")
    )
    make = onnx.helper.make_node
    return [
        make("Shape", [source], [shape], name=names(shape)),
        make("Slice", [shape, start, end], [hw], name=names(hw)),
        make("Mod", [hw, step], [rem], name=names(rem)),
        make("Sub", [step, rem], [short], name=names(short)),
        make("Mod", [short, step], [pad_hw], name=names(pad_hw)),
        make("Concat", [zeros, pad_hw], [pads], name=names(pads), axis=0),
        make("Pad", [source, pads], [padded], name=names(padded), mode="constant"),
        make("SpaceToDepth", [padded], [rearranged], name=names(rearranged), blocksize=stride),
        make(
            "Conv",
            [rearranged, weight_name, bias_name],
            list(conv.node.output),
            name=conv.node.name,
            kernel_shape=list(weight.shape[2:]),
            pads=[top, top, bottom, bottom],
            strides=[1, 1],
        ),
    ]
