"""The latency predictor recovers known coefficients and round-trips through JSON; one real
measurement through the int8 engine (export, build, time: about 15 s, marked slow)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from edgevision.errors import ConfigError, EdgeVisionError, InputFileError
from edgevision.layers.nas_ops import OPS, Block, CellGenotype, Genotype
from edgevision.models.nasnet import NASNET_A
from edgevision.search.latency import (
    LatencyModel,
    feature_names,
    latency_features,
    measure_latency_ms,
    relative_spread,
)


def random_cell(rng: random.Random) -> CellGenotype:
    blocks = tuple(
        Block(
            (rng.randrange(2 + k), rng.randrange(2 + k)), (rng.choice(sorted(OPS)), rng.choice(sorted(OPS)))
        )
        for k in range(5)
    )
    read = {i for block in blocks for i in block.inputs}
    return CellGenotype(blocks, tuple(i for i in range(2, 7) if i not in read))


def random_genotypes(count: int, seed: int) -> list[Genotype]:
    rng = random.Random(seed)
    return [Genotype(random_cell(rng), random_cell(rng)) for _ in range(count)]


def test_features_of_nasnet_a_by_hand() -> None:
    features = dict(zip(feature_names(), latency_features(NASNET_A), strict=True))
    # Fig. 4 normal cell: sep 5x5 x2, sep 3x3 x3, avg pool x3, identity x2 (not counted), 6 states.
    assert features["normal:sep_conv_5x5"] == 2 and features["normal:sep_conv_3x3"] == 3
    assert features["normal:avg_pool_3x3"] == 3 and features["normal:concat"] == 6
    # Reduction cell: sep 5x5 x2, sep 7x7 x2, max 3x3 x2, avg 3x3 x2, sep 3x3 x1, 4 states.
    assert features["reduction:sep_conv_7x7"] == 2 and features["reduction:max_pool_3x3"] == 2
    assert features["reduction:concat"] == 4 and features["constant"] == 1
    assert "normal:identity" not in features
    assert sum(v for k, v in features.items() if k.startswith("normal:") and k != "normal:concat") == 8


def test_fit_recovers_known_coefficients() -> None:
    genotypes = random_genotypes(120, seed=1)
    truth = np.random.default_rng(0).uniform(0.05, 2.0, len(feature_names()))
    latencies = [float(latency_features(g) @ truth) for g in genotypes]
    model = LatencyModel.fit(genotypes, latencies, ridge=0.0)
    np.testing.assert_allclose(model.coefficients, truth, rtol=1e-8)
    held_out = random_genotypes(5, seed=2)
    for g in held_out:
        assert model.predict(g) == pytest.approx(float(latency_features(g) @ truth), rel=1e-8)
    # A ridge penalty shrinks the coefficients, so the fit is no longer exact.
    shrunk = LatencyModel.fit(genotypes, latencies, ridge=1.0)
    assert not np.allclose(shrunk.coefficients, truth, rtol=1e-3)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = LatencyModel(np.arange(len(feature_names())) / 7, meta={"cpu": "test"})
    model.save(tmp_path / "m.json")
    loaded = LatencyModel.load(tmp_path / "m.json")
    np.testing.assert_array_equal(loaded.coefficients, model.coefficients)
    assert loaded.meta == {"cpu": "test"}
    assert loaded.predict(NASNET_A) == model.predict(NASNET_A)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not JSON"),
        ('{"coefficients": {"constant": 1}}', "other features"),
        ("[1]", "not a latency model"),
        ('{"coefficients": {"x": "y"}}', "other features"),
    ],
)
def test_bad_model_file_is_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(EdgeVisionError, match=message) as info:
        LatencyModel.load(tmp_path / "bad.json")
    assert "\n" not in str(info.value)


def test_fit_refuses_bad_latencies() -> None:
    genotypes = random_genotypes(3, seed=0)
    with pytest.raises(ConfigError, match="finite and positive"):
        LatencyModel.fit(genotypes, [1.0, float("nan"), 2.0])
    with pytest.raises(ConfigError, match="matching"):
        LatencyModel.fit(genotypes, [1.0, 2.0])


@pytest.mark.slow
def test_real_measurement_is_finite_and_positive() -> None:
    tiny = Genotype(
        CellGenotype((Block((0, 1), ("sep_conv_3x3", "identity")),), (2,)),
        CellGenotype((Block((0, 1), ("max_pool_3x3", "identity")),), (2,)),
    )
    ms = measure_latency_ms(tiny, batch=1, repeats=3, warmup=1)
    assert math.isfinite(ms) and ms > 0


def test_measure_refuses_bad_options() -> None:
    with pytest.raises(ConfigError, match="repeats"):
        measure_latency_ms(NASNET_A, repeats=0)
    with pytest.raises(ConfigError, match="clock"):
        measure_latency_ms(NASNET_A, clock="cpu", threads=2)  # CPU time is one thread's only
    with pytest.raises(ConfigError, match="clock"):
        measure_latency_ms(NASNET_A, clock="gpu")
    with pytest.raises(ConfigError, match="calibration"):
        measure_latency_ms(NASNET_A, calibration=np.zeros((2, 32, 32)))


def test_relative_spread_by_hand() -> None:
    # Quartiles of 1..5 (linear interpolation): 2, 3, 4: IQR 2 over median 3.
    assert relative_spread(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(2 / 3)
    assert relative_spread(np.full(7, 2.5)) == 0.0


def test_a_missing_or_non_numeric_model_file_is_an_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="latency model"):
        LatencyModel.load(tmp_path / "absent.json")
    names = feature_names()
    (tmp_path / "text.json").write_text(json.dumps({"coefficients": dict.fromkeys(names, "fast")}))
    with pytest.raises(InputFileError, match="not a latency model file"):
        LatencyModel.load(tmp_path / "text.json")
