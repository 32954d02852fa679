"""Tactic selection on a tiny Conv-Relu model, with a fake timer so the choice is deterministic: the
fastest accepted tactic wins, a rejected one is reported and never chosen, a timing cache skips
timing, and its keys, file and the tactics' round trips are checked."""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgevision.deploy.builder import BuildOptions, build_engine
from edgevision.deploy.calibration import calibrate, collect_activation_histograms
from edgevision.deploy.plan import Binding, Plan, read_plan, write_plan
from edgevision.deploy.quantize import quantize_qdq
from edgevision.deploy.tuning import (
    Tactic,
    TimingCache,
    candidate_tactics,
    cpu_identity,
    default_timing_cache,
    max_relative_error_gate,
    time_session,
    timing_key,
    tune,
    tuner,
)
from edgevision.errors import ConfigError, InputFileError, ShapeError

SHAPE = (1, 3, 8, 8)
REPEATS = 3
# Conv weight scale of the model each build makes: int8 per-tensor is "inaccurate" (50% error)
WEIGHT_SCALES = {("fp32", False): 1.0, ("int8", True): 1.001, ("int8", False): 1.5}


def conv_relu(weight_scale: float = 1.0) -> onnx.ModelProto:
    """image (1, 3, 8, 8) -> 3x3 Conv to 4 channels, padding 1 -> Relu -> out (1, 4, 8, 8)."""
    weight = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32) * weight_scale
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "weight"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["out"], name="relu"),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(weight, "weight")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Builder:
    """A build function that records the builds it makes; the models differ in their weights only."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, tactic: Tactic) -> onnx.ModelProto:
        self.calls.append(tactic.build_key())
        return conv_relu(WEIGHT_SCALES[tactic.build_key()])


class FakeTimer:
    """A timer that returns the given timestamps (seconds) in order and counts its calls."""

    def __init__(self, stamps: Iterable[float]) -> None:
        self.stamps = iter(stamps)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return next(self.stamps)


def timer_for(durations_ms: Iterable[float], repeats: int = REPEATS) -> FakeTimer:
    """Timestamps for timing candidates in turn, every run of the n-th lasting ``durations_ms[n]``."""
    stamps, now = [], 0.0
    for ms in durations_ms:
        for _ in range(repeats):
            stamps += [now, now + ms / 1000]
            now += 1.0
    return FakeTimer(stamps)


def fp32(threads: int = 1, level: str = "all") -> Tactic:
    return Tactic(precision="fp32", threads=threads, graph_optimization_level=level)


def int8(per_channel: bool, threads: int = 1) -> Tactic:
    return Tactic(precision="int8", per_channel=per_channel, threads=threads, graph_optimization_level="all")


@pytest.fixture(scope="module")
def feeds() -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)}


@pytest.fixture(scope="module")
def reference(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(conv_relu().SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_tune(feeds: dict[str, np.ndarray], candidates: list[Tactic], timer: FakeTimer, **options):
    return tune(candidates, Builder(), feeds, warmup=1, repeats=REPEATS, timer=timer, **options)


# --- Tactics ------------------------------------------------------------------------------------


def test_tactic_round_trips_through_json() -> None:
    tactic = int8(per_channel=True, threads=2)
    data = json.loads(json.dumps(tactic.as_dict()))
    assert data == {
        "backend": "ort",
        "precision": "int8",
        "per_channel": True,
        "threads": 2,
        "graph_optimization_level": "all",
    }
    assert Tactic.from_dict(data) == tactic


@pytest.mark.parametrize(
    "data",
    [
        {"precision": "int8", "threads": 1},
        {"precision": "fp32", "threads": 1, "graph_optimization_level": "all", "kernel": "winograd"},
    ],
)
def test_tactic_from_a_malformed_dict_is_refused(data: dict) -> None:
    with pytest.raises(ConfigError, match="not a tactic"):
        Tactic.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("backend", "coreml"), ("precision", "int4"), ("threads", -1), ("graph_optimization_level", "max")],
)
def test_tactic_out_of_range_is_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(fp32(), **{field: value})


def test_session_options_carry_the_tactic() -> None:
    options = fp32(threads=3, level="basic").session_options()
    assert options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    extended = fp32(level="extended").session_options().graph_optimization_level
    assert extended == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED


@pytest.mark.parametrize(("precisions", "count"), [(["fp32"], 4), (["int8"], 8), (["fp32", "int8"], 12)])
def test_candidate_tactics_vary_per_channel_for_int8_only(precisions: list[str], count: int) -> None:
    candidates = candidate_tactics(precisions)
    assert len(candidates) == len(set(candidates)) == count
    assert not any(tactic.per_channel for tactic in candidates if tactic.precision == "fp32")
    assert {tactic.threads for tactic in candidates} == {1, 2}
    assert {tactic.graph_optimization_level for tactic in candidates} == {"extended", "all"}


# --- Timing -------------------------------------------------------------------------------------


def test_time_session_is_the_median_of_the_timed_runs(feeds: dict[str, np.ndarray]) -> None:
    session = ort.InferenceSession(conv_relu().SerializeToString(), providers=["CPUExecutionProvider"])
    durations = iter([5.0, 1.0, 3.0])
    timer = FakeTimer(stamp for ms in durations for stamp in (0.0, ms / 1000))
    assert time_session(session, feeds, warmup=2, repeats=3, timer=timer) == pytest.approx(3.0)
    assert timer.calls == 6  # warmup runs are not timed


def test_time_session_needs_a_repeat(feeds: dict[str, np.ndarray]) -> None:
    session = ort.InferenceSession(conv_relu().SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match="repeats"):
        time_session(session, feeds, repeats=0)


# --- Gate ---------------------------------------------------------------------------------------


def test_max_relative_error_gate() -> None:
    gate = max_relative_error_gate(0.01)
    reference = [np.array([0.0, 2.0, -4.0], np.float32)]
    assert gate([reference[0] + 0.03], reference) is None  # 0.03 / 4 < 1%
    assert "max relative error 1.25e-02 > 1.00e-02" in gate([reference[0] + 0.05], reference)
    assert "max relative error nan" in gate([np.array([0.0, np.nan, -4.0], np.float32)], reference)
    assert "shape" in gate([reference[0][:2]], reference)
    assert "2 outputs, expected 1" in gate([reference[0], reference[0]], reference)
    zeros = [np.zeros(3, np.float32)]
    assert gate(zeros, zeros) is None
    assert gate([zeros[0] + 1], zeros) is not None
    with pytest.raises(ConfigError, match="tolerance"):
        max_relative_error_gate(-1.0)


# --- Tuning -------------------------------------------------------------------------------------


def test_the_fastest_candidate_wins(feeds: dict[str, np.ndarray]) -> None:
    candidates = [fp32(threads=1), fp32(threads=2), fp32(threads=1, level="extended")]
    result = run_tune(feeds, candidates, timer_for([3.0, 1.0, 2.0]))
    assert result.tactic == fp32(threads=2)
    assert result.ms == pytest.approx(1.0)
    assert result.model == conv_relu().SerializeToString()
    assert [row.ms for row in result.rows] == pytest.approx([3.0, 1.0, 2.0])
    assert all(row.accepted and not row.cached for row in result.rows)


def test_a_faster_candidate_the_gate_rejects_is_not_chosen(
    feeds: dict[str, np.ndarray], reference: list[np.ndarray]
) -> None:
    candidates = [fp32(), int8(per_channel=False), int8(per_channel=True)]
    assert run_tune(feeds, candidates, timer_for([3.0, 1.0, 2.0])).tactic == int8(per_channel=False)

    gated = run_tune(
        feeds,
        candidates,
        timer_for([3.0, 2.0]),  # the rejected candidate is not timed
        reference_outputs=reference,
        gate=max_relative_error_gate(0.01),
    )
    assert gated.tactic == int8(per_channel=True)
    rejected = gated.rows[1]
    assert (rejected.tactic, rejected.ms, rejected.accepted) == (int8(per_channel=False), None, False)
    assert rejected.reason == "output 0: max relative error 5.00e-01 > 1.00e-02"
    table = str(gated)
    assert f"rejected: {rejected.reason}" in table
    assert table.count("<- chosen") == 1
    assert "ort int8 per-channel threads=1 opt=all      2.000  timed   accepted  <- chosen" in table


def test_builds_are_made_once_per_precision_and_scales(feeds: dict[str, np.ndarray]) -> None:
    builder = Builder()
    candidates = candidate_tactics(["fp32", "int8"])
    tune(candidates, builder, feeds, warmup=0, repeats=1, timer=timer_for([1.0] * 12, repeats=1))
    assert builder.calls == [("fp32", False), ("int8", True), ("int8", False)]


def test_no_accepted_candidate_is_a_one_line_error(
    feeds: dict[str, np.ndarray], reference: list[np.ndarray]
) -> None:
    candidates = [int8(per_channel=False, threads=1), int8(per_channel=False, threads=2)]
    with pytest.raises(ConfigError) as error:
        run_tune(
            feeds, candidates, FakeTimer([]), reference_outputs=reference, gate=max_relative_error_gate(0.01)
        )
    message = str(error.value)
    assert message.startswith("none of 2 candidate tactics was accepted: 2x output 0: max relative error")
    assert "\n" not in message


def test_a_candidate_whose_session_fails_is_rejected(feeds: dict[str, np.ndarray]) -> None:
    def build(tactic: Tactic) -> bytes:
        return b"not an ONNX model" if tactic.precision == "int8" else conv_relu().SerializeToString()

    result = tune([int8(per_channel=True), fp32()], build, feeds, repeats=REPEATS, timer=timer_for([1.0]))
    assert result.tactic == fp32()
    assert result.rows[0].reason.startswith("session failed: ")


def test_feeds_without_an_input_of_the_model_are_refused(feeds: dict[str, np.ndarray]) -> None:
    with pytest.raises(ShapeError, match=r"the feeds \['pixels'\] lack the input\(s\) \['image'\]"):
        run_tune({"pixels": feeds["image"]}, [fp32()], FakeTimer([]))


def test_feeds_of_the_wrong_shape_reject_every_candidate(feeds: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConfigError, match="2x session failed: .*dimensions"):
        run_tune({"image": feeds["image"][:, :2]}, [fp32(threads=1), fp32(threads=2)], FakeTimer([]))


def test_tune_needs_candidates_and_a_gate_with_its_references(
    feeds: dict[str, np.ndarray], reference: list[np.ndarray]
) -> None:
    with pytest.raises(ConfigError, match="no candidate"):
        run_tune(feeds, [], FakeTimer([]))
    with pytest.raises(ConfigError, match="reference outputs"):
        run_tune(feeds, [fp32()], FakeTimer([]), gate=max_relative_error_gate(0.01))
    with pytest.raises(ConfigError, match="reference outputs"):
        run_tune(feeds, [fp32()], FakeTimer([]), reference_outputs=reference)


# --- Timing cache -------------------------------------------------------------------------------


def test_a_cache_hit_skips_timing(tmp_path: Path, feeds: dict[str, np.ndarray]) -> None:
    path = tmp_path / "cache" / "timing.json"
    cache = TimingCache.load(path)
    assert len(cache) == 0
    candidates = [fp32(threads=1), fp32(threads=2)]
    first = run_tune(feeds, candidates, timer_for([2.0, 1.0]), cache=cache)
    assert cache.save() == path

    reloaded = TimingCache.load(path)
    assert len(reloaded) == 2
    timer = FakeTimer([])
    second = run_tune(feeds, candidates, timer, cache=reloaded)
    assert timer.calls == 0
    assert (second.tactic, second.ms) == (first.tactic, first.ms)
    assert all(row.cached for row in second.rows)
    assert "cache" in str(second)


def test_a_second_tuned_build_reads_the_timing_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "conv_relu.onnx"
    onnx.save(conv_relu(), source)
    cache = tmp_path / "timing.json"
    options = BuildOptions(tune=True, threads=(1, 2), timing_cache=cache)
    first = build_engine(source, tmp_path / "first.plan", options)
    assert len(first.tuning.rows) == 4 and not any(row.cached for row in first.tuning.rows)
    assert len(TimingCache.load(cache)) == 4
    timed = []
    monkeypatch.setattr(tuner, "time_session", lambda *args, **kwargs: timed.append(args) or 1.0)
    second = build_engine(source, tmp_path / "second.plan", options)
    assert not timed  # every tactic's time came from the cache
    assert [(row.tactic, row.ms) for row in second.tuning.rows] == [
        (row.tactic, row.ms) for row in first.tuning.rows
    ]
    assert all(row.cached for row in second.tuning.rows)
    assert f"timing cache: 4 timings in {cache}" in second.logs["select"]


def test_the_default_timing_cache_is_the_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEVISION_CACHE_DIR", str(tmp_path / "ours"))
    assert BuildOptions().timing_cache == tmp_path / "ours" / "timing_cache.json"
    monkeypatch.delenv("EDGEVISION_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_timing_cache() == tmp_path / "xdg" / "edgevision" / "timing_cache.json"


def test_a_corrupt_timing_cache_fails_a_tuned_build_before_any_work(tmp_path: Path) -> None:
    cache = tmp_path / "timing.json"
    cache.write_text("[]")
    with pytest.raises(InputFileError, match="not an edgevision timing cache"):
        build_engine("no-such-model", tmp_path / "x.plan", BuildOptions(tune=True, timing_cache=cache))


def test_timing_keys_differ_in_what_a_latency_depends_on(feeds: dict[str, np.ndarray]) -> None:
    model, tactic = conv_relu().SerializeToString(), fp32(threads=1)
    key = timing_key(model, tactic, feeds, cpu="cpu A")
    assert key == timing_key(model, fp32(threads=1), dict(feeds), cpu="cpu A")
    others = [
        timing_key(model, fp32(threads=2), feeds, cpu="cpu A"),
        timing_key(model, fp32(level="extended"), feeds, cpu="cpu A"),
        timing_key(conv_relu(1.5).SerializeToString(), tactic, feeds, cpu="cpu A"),
        timing_key(model, tactic, {"image": np.zeros((1, 3, 16, 16), np.float32)}, cpu="cpu A"),
        timing_key(model, tactic, feeds, cpu="cpu B"),
    ]
    assert len({key, *others}) == 6
    assert timing_key(model, tactic, feeds) == timing_key(model, tactic, feeds, cpu=cpu_identity())


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"format": "edgevision-calibration/1", "entries": {}}',
        '{"format": "edgevision-timing/1", "entries": {"key": -1.0}}',
        '{"format": "edgevision-timing/1", "entries": ["key"]}',
        "[]",
    ],
)
def test_a_corrupt_cache_file_is_a_one_line_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "timing.json"
    path.write_text(text)
    with pytest.raises(InputFileError, match="not an edgevision timing cache") as error:
        TimingCache.load(path)
    assert "\n" not in str(error.value)


def test_cache_refuses_a_negative_time(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="non-negative"):
        TimingCache(tmp_path / "timing.json").put("key", -1.0)


def test_cpu_identity_names_the_model_and_the_isa_flags(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\n"
        "flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_int8\n\n"
        "processor\t: 1\nmodel name\t: Other CPU\nflags\t\t: fpu\n"
    )
    identity = cpu_identity(x86)
    assert identity.startswith("Test CPU 9000; ")
    assert identity.endswith("; avx2 avx512f avx512_vnni amx_int8")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU part\t: 0xd0c\n")
    assert cpu_identity(arm).startswith("0xd0c; ")
    assert cpu_identity(arm).endswith("; asimd asimddp i8mm")
    assert cpu_identity(tmp_path / "missing").startswith(platform.processor() or platform.machine())


# --- With a real int8 build ---------------------------------------------------------------------


def test_tune_a_real_int8_build_into_a_plan(
    tmp_path: Path, feeds: dict[str, np.ndarray], reference: list[np.ndarray]
) -> None:
    """Real Q/DQ models and the real clock: the choice is not asserted, only that it is an accepted
    tactic whose model and timing cache travel in a plan."""
    model = conv_relu()
    ranges = calibrate(collect_activation_histograms(model, [feeds]), "minmax")

    def build(tactic: Tactic) -> onnx.ModelProto | bytes:
        if tactic.precision == "fp32":
            return model
        path = tmp_path / f"int8_{tactic.per_channel}.onnx"
        return quantize_qdq(model, ranges, path, per_channel=tactic.per_channel).read_bytes()

    cache = TimingCache(tmp_path / "timing.json")
    candidates = candidate_tactics(["fp32", "int8"], threads=(1,), levels=("all",))
    gate = max_relative_error_gate(0.05)
    result = tune(candidates, build, feeds, reference_outputs=reference, gate=gate, cache=cache, repeats=5)
    assert any(row.accepted and row.tactic == result.tactic for row in result.rows)
    assert all(row.accepted for row in result.rows if row.tactic.precision == "fp32")

    plan = Plan(
        model=result.model,
        precision=result.tactic.precision,
        inputs=(Binding("image", "float32", SHAPE),),
        outputs=(Binding("out", "float32", (1, 4, 8, 8)),),
        tactics={"session": result.tactic.as_dict()},
        extras={"timing_cache.json": cache.save().read_bytes()},
    )
    loaded = read_plan(write_plan(tmp_path / "conv_relu.plan", plan))
    assert Tactic.from_dict(loaded.tactics["session"]) == result.tactic
    (tmp_path / "unpacked.json").write_bytes(loaded.extras["timing_cache.json"])
    assert len(TimingCache.load(tmp_path / "unpacked.json")) == len(cache)
