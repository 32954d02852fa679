"""The engine: a plan tuned on a larger machine runs this machine's cores (with a note), a thread
count given to it is bounded, and a plan whose model is not the one its manifest describes (a
swapped plan) is refused in one line that names the plan, never quoting a session object."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from onnx import TensorProto, helper
from plan_files import full_plan, relu_model, rewrite, session_tactic, with_digests

from edgevision.deploy import runtime
from edgevision.deploy.export import OnnxNetwork
from edgevision.deploy.plan import Binding, Plan, write_plan
from edgevision.deploy.runtime import Engine, load_engine
from edgevision.errors import ConfigError, InputFileError, PlanFileError, ShapeError
from edgevision.models import create_model


def tuned(threads: int) -> Engine:
    return Engine(replace(full_plan(), tactics={"session": session_tactic(threads)}))


def test_a_plan_naming_more_threads_than_cores_runs_on_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    engine = tuned(1000)
    assert engine.tactic.threads == 2
    assert engine.session.get_session_options().intra_op_num_threads == 2
    assert engine.notes == [
        "the plan's tactic names 1000 threads; this machine has 2 cores, so the engine runs 2"
    ]
    same = tuned(2)
    assert same.session.get_session_options().intra_op_num_threads == 2 and not same.notes


def test_threads_given_to_the_engine_are_taken_within_bounds() -> None:
    engine = Engine(full_plan(), threads=3)
    assert engine.session.get_session_options().intra_op_num_threads == 3 and not engine.notes
    for threads in (-1, 2000, True, 1.5):
        with pytest.raises(
            ConfigError, match=rf"^threads must be an integer from 0 to 1024, got {threads!r}$"
        ):
            Engine(full_plan(), threads=threads)


def test_a_plan_with_a_swapped_model_is_refused_naming_the_plan(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "swapped.plan", full_plan())
    rewrite(path, lambda members: with_digests({**members, "model.onnx": relu_model("logits")}))
    with pytest.raises(
        PlanFileError,
        match=r"^.*swapped.plan: its model's outputs are \['logits'\], its manifest lists \['out'\] "
        r"\(a model from another plan\?\)$",
    ):
        load_engine(path)


def test_a_plan_that_is_not_a_detector_is_refused_naming_it(tmp_path: Path) -> None:
    engine = load_engine(write_plan(tmp_path / "relu.plan", full_plan()))
    network = create_model("faceboxes")
    with pytest.raises(
        InputFileError,
        match=r"^.*relu.plan is not a FaceBoxes network: it has 1 input\(s\) and the outputs \['out'\]; "
        r"the detector has 1 input and the outputs \['loc', 'conf'\]$",
    ):
        OnnxNetwork(engine, network)
    with pytest.raises(InputFileError, match=r"^the session's model is not a FaceBoxes network") as raised:
        OnnxNetwork(engine.session, network)
    assert " at 0x" not in str(raised.value)


def fixed_size_detector_plan(path: Path) -> Path:
    """A plan of a stand-in detector network that takes only (1, 3, 8, 8) images."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["loc"]), helper.make_node("Relu", ["image"], ["conf"])],
        "fixed",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, 8, 8]) for name in ("loc", "conf")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    bindings = [Binding(name, "float32", (1, 3, 8, 8)) for name in ("image", "loc", "conf")]
    return write_plan(path, Plan(model, "fp32", tuple(bindings[:1]), tuple(bindings[1:])))


def test_a_detector_plan_checks_the_input_size_it_takes(tmp_path: Path) -> None:
    network = OnnxNetwork(
        load_engine(fixed_size_detector_plan(tmp_path / "f.plan")), create_model("faceboxes")
    )
    image = torch.rand(1, 3, 8, 8)
    loc, conf = network(image)
    assert torch.equal(loc, image) and torch.equal(conf, image)
    with pytest.raises(
        ShapeError, match=r"^input 'image' must be of shape \(1, 3, 8, 8\), got \(1, 3, 16, 16\)$"
    ):
        network(torch.zeros(1, 3, 16, 16))
