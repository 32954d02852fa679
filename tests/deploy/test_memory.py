"""Activation memory planning: lifetimes and sizes of a hand-built graph, greedy-by-size offsets
checked by hand, and the arena's invariants on random lifetimes and on the FaceBoxes graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgevision.deploy.export import export_onnx
from edgevision.deploy.memory import MemoryPlan, TensorLifetime, plan_memory, plan_offsets, tensor_lifetimes
from edgevision.errors import ConfigError, MemoryPlanError, ShapeError
from edgevision.models import create_model


def tiny_model(nodes_reversed: bool = False) -> onnx.ModelProto:
    """``x (1, w)`` -> a = Relu(x) -> b = Concat(a x 8) -> c = Mul(b, 2) -> d = Concat(a, c); the
    scalar 2 is an initializer."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Concat", ["a"] * 8, ["b"], axis=1),
        helper.make_node("Mul", ["b", "two"], ["c"]),
        helper.make_node("Concat", ["a", "c"], ["d"], axis=1),
    ]
    graph = helper.make_graph(
        nodes[::-1] if nodes_reversed else nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "w"])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, None])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def assert_valid(plan: MemoryPlan) -> None:
    """Tensors live at a common node do not share bytes; the arena lies between the bounds."""
    for i, (tensor, offset) in enumerate(zip(plan.tensors, plan.offsets)):
        assert offset % plan.alignment == 0
        assert offset + tensor.size <= plan.arena_size
        for other, other_offset in zip(plan.tensors[i + 1 :], plan.offsets[i + 1 :]):
            if tensor.overlaps(other):
                assert offset + tensor.size <= other_offset or other_offset + other.size <= offset, (
                    f"{tensor} at {offset} overlaps {other} at {other_offset}"
                )
    report = plan.report()
    assert report.lower_bound_bytes <= report.arena_bytes == plan.arena_size <= report.naive_bytes


def test_lifetimes_and_sizes_of_a_hand_built_graph() -> None:
    tensors = tensor_lifetimes(tiny_model(), {"x": (1, 10)})
    assert tensors == (
        TensorLifetime("x", 40, 0, 0),
        TensorLifetime("a", 40, 0, 3),  # read by the last node
        TensorLifetime("b", 320, 1, 2),
        TensorLifetime("c", 320, 2, 3),
        TensorLifetime("d", 360, 3, 3),  # a graph output: to the last node
    )


def test_plan_of_a_hand_built_graph() -> None:
    # 64-byte sizes: x 64, a 64, b 320, c 320, d 384. Placed largest first: d at 0; b (nodes 1-2)
    # misses d (node 3): 0; c (2-3) meets d and b, both at 0: above them, 384; x (0) meets none
    # of them: 0; a (0-3) meets all: above c, 704. Live at node 3: a + c + d = 768 = the arena.
    plan = plan_memory(tiny_model(), {"x": (1, 10)})
    assert [t.name for t in plan.tensors] == ["x", "a", "b", "c", "d"]
    assert plan.offsets == (0, 704, 0, 384, 0)
    assert plan.arena_size == 768
    report = plan.report()
    assert (report.num_tensors, report.naive_bytes, report.lower_bound_bytes) == (5, 1152, 768)
    assert "768 B" in str(report) and " 66.7% of naive" in str(report)
    assert_valid(plan)


def test_best_fit_takes_the_smallest_gap() -> None:
    # In placing order: g [0, 6) and q [6, 9) meet at node 0; h (node 1) goes under q at 0;
    # p (1-2) meets q and h: the gap [3, 6). At node 2 z meets p [3, 5) and q [6, 9): of the gaps
    # [0, 3) and [5, 6) the smaller fits, so z goes to 5 where first fit would take 0.
    tensors = [
        TensorLifetime("g", 6, 0, 0),
        TensorLifetime("q", 3, 0, 2),
        TensorLifetime("h", 3, 1, 1),
        TensorLifetime("p", 2, 1, 2),
        TensorLifetime("z", 1, 2, 2),
    ]
    plan = plan_offsets(tensors, alignment=1)
    assert plan.offsets == (0, 6, 0, 3, 5)
    assert plan.arena_size == 9
    assert plan.report().lower_bound_bytes == 9
    assert_valid(plan)


def test_random_lifetimes_give_valid_plans() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        count, steps = rng.integers(1, 40), rng.integers(1, 30)
        firsts = rng.integers(0, steps, count)
        lasts = firsts + rng.integers(0, steps, count)
        sizes = rng.choice([0, 1, 7, 64, 100, 1000, 4096], count) * rng.integers(1, 5, count)
        tensors = [
            TensorLifetime(f"t{i}", int(size), int(first), int(last))
            for i, (size, first, last) in enumerate(zip(sizes, firsts, lasts))
        ]
        assert_valid(plan_offsets(tensors, alignment=int(rng.choice([1, 16, 64]))))


def test_unknown_sizes_are_named() -> None:
    with pytest.raises(MemoryPlanError, match=r"size of x, a, b, c, d unknown; give concrete shapes"):
        tensor_lifetimes(tiny_model())


@pytest.mark.parametrize(
    ("shapes", "error", "message"),
    [
        ({"y": (1, 10)}, ConfigError, r"'y' is not an input of the graph; its inputs are \['x'\]"),
        ({"x": (10,)}, ShapeError, r"input 'x' has the shape \(1, 'w'\), got \(10,\)"),
        ({"x": (2, 10)}, ShapeError, r"input 'x' has the shape \(1, 'w'\), got \(2, 10\)"),
    ],
)
def test_bad_input_shapes_are_rejected(shapes: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        tensor_lifetimes(tiny_model(), shapes)


def test_unsorted_graph_is_rejected() -> None:
    with pytest.raises(MemoryPlanError, match=r"node 0 \(Concat\) reads 'a' before .* not topologically"):
        tensor_lifetimes(tiny_model(nodes_reversed=True), {"x": (1, 10)})


def test_alignment_below_one_is_rejected() -> None:
    with pytest.raises(ConfigError, match="alignment must be at least 1 byte, got 0"):
        plan_offsets([TensorLifetime("t", 4, 0, 0)], alignment=0)


def test_faceboxes_plan(tmp_path: Path) -> None:
    path = export_onnx(create_model("faceboxes"), tmp_path / "faceboxes.onnx", input_size=(480, 640))
    plan = plan_memory(onnx.load(path), {"image": (1, 3, 480, 640)})
    assert_valid(plan)
    report = plan.report()
    print(f"\nFaceBoxes 640x480, batch 1:\n{report}")
    assert report.num_tensors == len(onnx.load(path).graph.node) + 1  # every node output and the image
    # A chain of layers: the peak is conv1's CReLU (conv out, its negation, their concat), and
    # greedy by size reaches that bound, a third of one buffer per tensor.
    assert report.arena_bytes == report.lower_bound_bytes < 0.4 * report.naive_bytes
