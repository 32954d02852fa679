"""INT8 calibration: the calibrators on distributions whose answer is known, TensorRT's KL step on
histograms small enough to work by hand, activation collection against numpy, the cache and the
image-folder reader."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy.stats import norm

from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.calibration import (
    ImageFolderBatches,
    TensorRange,
    TensorStats,
    calibrate,
    collect_activation_histograms,
    collect_activation_ranges,
    entropy_amax,
    entropy_divergences,
    load_calibration_cache,
    minmax_amax,
    model_digest,
    mse_amax,
    percentile_amax,
    quantize_expand,
    save_calibration_cache,
)
from edgevision.errors import ConfigError, InputFileError, ShapeError

SAMPLES = 1_000_000
OUTLIERS = SAMPLES // 10_000  # 0.01 %


def stats_of(x: np.ndarray) -> TensorStats:
    """Reference histogram by np.histogram: 2048 bins of |x| over [0, max |x|]."""
    amax = float(np.abs(x).max())
    hist, _ = np.histogram(np.abs(x), bins=2048, range=(0.0, amax))
    return TensorStats(float(x.min()), float(x.max()), hist)


@pytest.fixture(scope="module")
def gaussian() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SAMPLES).astype(np.float32)


@pytest.fixture(scope="module")
def with_outliers(gaussian: np.ndarray) -> np.ndarray:
    """N(0, 1) with 0.01 % of the samples replaced by +-50."""
    rng = np.random.default_rng(1)
    x = gaussian.copy()
    x[rng.choice(SAMPLES, OUTLIERS, replace=False)] = 50.0 * rng.choice([-1.0, 1.0], OUTLIERS)
    return x


def test_entropy_clips_the_outliers_that_minmax_keeps(with_outliers: np.ndarray) -> None:
    stats = stats_of(with_outliers)
    width = stats.amax / 2048
    gaussian_max = float(np.abs(with_outliers[np.abs(with_outliers) < 50]).max())
    amax = entropy_amax(stats.hist, stats.edges)
    # The first candidate keeps 128 bins (3.125 sigma). Past the Gaussian's last bin every candidate
    # but the last puts the outliers into an empty bin, where Q is 0 (KL = inf), and the last one
    # (all 2048 bins) squeezes the Gaussian into ~13 of the 128 levels.
    assert 128 * width <= amax <= gaussian_max + 1.5 * width
    assert 3.0 < amax < 8.0
    assert minmax_amax(stats.hist, stats.edges) == 50.0


def test_mse_keeps_most_of_the_outliers(with_outliers: np.ndarray) -> None:
    stats = stats_of(with_outliers)
    amax = mse_amax(stats.hist, stats.edges)
    # Error per sample ~ (1 - f) (t / 127)^2 / 12 (rounding) + f (50 - t)^2 (clipping), f = 1e-4:
    # zero derivative at t = 50 f / (f + (1 - f) / (12 * 127^2)) = 47.54. Clipping 0.01 % at 50 costs
    # more than the coarser step, so MSE lands between the entropy threshold and the max.
    f = OUTLIERS / SAMPLES
    expected = 50 * f / (f + (1 - f) / (12 * 127**2))
    assert amax == pytest.approx(expected, abs=0.1)
    assert entropy_amax(stats.hist, stats.edges) < amax < minmax_amax(stats.hist, stats.edges)


def test_mse_of_a_gaussian_matches_a_brute_force_search(gaussian: np.ndarray) -> None:
    stats = stats_of(gaussian)
    amax = mse_amax(stats.hist, stats.edges)
    sample = gaussian[:200_000].astype(np.float64)

    def error(t: float) -> float:
        step = t / 127
        return float(np.mean((sample - np.clip(np.round(sample / step), -127, 127) * step) ** 2))

    grid = np.linspace(3.0, 5.0, 81)
    best = min(error(t) for t in grid)
    assert 3.5 < amax < 4.5
    assert error(amax) <= 1.01 * best


def test_percentile_finds_the_gaussian_quantiles(gaussian: np.ndarray, with_outliers: np.ndarray) -> None:
    stats = stats_of(gaussian)
    # P(|x| > t) = 1e-4 at t = isf(5e-5); the estimate's sampling sd is ~0.02 at 1e6 samples.
    assert percentile_amax(stats.hist, stats.edges, 99.99) == pytest.approx(norm.isf(0.5e-4), abs=0.1)
    # With 0.01 % at 50, the top 0.1 % holds the outliers and 0.09 % of the Gaussian: the bin edge
    # sits within 2 bins (0.05) plus 3 sd (0.03) of the mixture's quantile.
    mixed = stats_of(with_outliers)
    f = OUTLIERS / SAMPLES
    expected = norm.isf((1e-3 - f) / (1 - f) / 2)
    assert percentile_amax(mixed.hist, mixed.edges, 99.9) == pytest.approx(expected, abs=0.08)
    with pytest.raises(ConfigError, match="percentile"):
        percentile_amax(stats.hist, stats.edges, 0.0)


def test_entropy_of_a_uniform_distribution_is_its_max() -> None:
    x = np.random.default_rng(2).uniform(-1.0, 1.0, SAMPLES).astype(np.float32)
    stats = stats_of(x)
    width = stats.amax / 2048
    # Only the last candidate has no clipped mass, and there Q (16 flat bins per level) equals P.
    assert abs(entropy_amax(stats.hist, stats.edges) - stats.amax) <= 2 * width


def test_quantize_expand_reproduces_the_talks_example() -> None:
    # Migacz, GTC 2017: 8 bins into 2 levels, the empty bin stays empty.
    got = quantize_expand(np.array([1, 0, 2, 3, 5, 3, 1, 7]), 2)
    np.testing.assert_array_equal(got, [2, 0, 2, 2, 4, 4, 4, 4])


def test_kl_is_zero_when_each_level_is_one_bin_and_nothing_is_clipped() -> None:
    hist = np.zeros(2048, dtype=np.int64)
    hist[:128] = np.arange(1, 129)
    divergences = entropy_divergences(hist)
    assert divergences[0] == 0.0  # i = 128: P == Q bin for bin
    assert np.all(divergences[1:] > 0)
    assert entropy_amax(hist, np.arange(2049.0)) == 128.5  # (m + 0.5) * width, width 1
    assert entropy_amax(hist, np.arange(2049.0) / 2) == 64.25


def test_kl_of_a_four_bin_histogram_by_hand() -> None:
    hist = np.array([4, 0, 2, 2])
    # i=2: P = [4, 0+2+2], Q = [4, 0] -> P has mass where Q has none: inf.
    # i=3: P = [4, 0, 2+2]/8, Q = [4, 0, 2]/6 -> KL = 0.5 ln(0.5 / (2/3)) + 0.5 ln(0.5 / (1/3)).
    # i=4: P = Q = [4, 0, 2, 2]/8 (level 2 spreads 4 over its two bins) -> 0.
    divergences = entropy_divergences(hist, levels=2)
    np.testing.assert_allclose(divergences, [math.inf, 0.5 * math.log(1.125), 0.0], atol=1e-12)
    assert entropy_amax(hist, np.arange(5.0), levels=2) == 4.5


def test_calibrate_skip_zeros_takes_the_relu_spike_out_of_the_entropy_search() -> None:
    rng = np.random.default_rng(3)
    relu = np.maximum(rng.standard_normal(SAMPLES), 0).astype(np.float32)  # half exact zeros
    plain = stats_of(relu)
    stats = {"relu": TensorStats(plain.min, plain.max, plain.hist, int(np.count_nonzero(relu == 0)))}
    with_spike = calibrate(stats, "entropy")["relu"].amax
    without = calibrate(stats, "entropy", skip_zeros=True)["relu"].amax
    # The spike (p0 = 0.5 in bin 0) costs ~0.5 ln g when the first level merges g bins, and g steps
    # up just past each multiple of 128 bins: the search stops at a multiple of 128 (here 768, 0.37
    # of the max, KL ~1.0 nats, nearly all of it the spike). Without the zeros the half-Gaussian is
    # calibrated like a Gaussian, near its max.
    width = plain.amax / 2048
    assert (with_spike / width - 0.5) % 128 == pytest.approx(0.0, abs=1e-6)
    assert with_spike < 0.5 * without
    assert 3.0 < without <= plain.amax + width
    with pytest.raises(ConfigError, match="unknown calibration method"):
        calibrate(stats, "kl")


def relu_double_model() -> onnx.ModelProto:
    """x (N, 4) -> Relu -> r; r * 2 -> y; the shape of y feeds only a Shape node (not calibrated)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Mul", ["r", "two"], ["y"]),
        helper.make_node("Neg", ["x"], ["n"]),
        helper.make_node("Shape", ["n"], ["s"]),
    ]
    graph = helper.make_graph(
        nodes,
        "relu_double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("s", TensorProto.INT64, [2]),
        ],
        [numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_collection_matches_numpy_over_two_passes() -> None:
    rng = np.random.default_rng(4)
    batches = [{"x": rng.standard_normal((5, 4)).astype(np.float32) * scale} for scale in (1.0, 3.0, 0.5)]
    x = np.concatenate([batch["x"] for batch in batches])
    stats = collect_activation_histograms(relu_double_model(), batches, num_bins=16)
    assert sorted(stats) == ["r", "x", "y"]  # "n" only feeds Shape
    for name, value in {"x": x, "r": np.maximum(x, 0), "y": 2 * np.maximum(x, 0)}.items():
        assert (stats[name].min, stats[name].max) == (float(value.min()), float(value.max()))
        expected, _ = np.histogram(np.abs(value), bins=16, range=(0.0, stats[name].amax))
        np.testing.assert_array_equal(stats[name].hist, expected)  # the wide middle batch is not re-binned
    assert stats["r"].zeros == np.count_nonzero(x <= 0)
    assert collect_activation_ranges(relu_double_model(), batches)["y"] == (0.0, float(2 * x.max()))


def test_collection_rejects_an_iterator_a_missing_input_and_no_data() -> None:
    batch = {"x": np.ones((1, 4), dtype=np.float32)}
    with pytest.raises(ConfigError, match="iterator"):
        collect_activation_histograms(relu_double_model(), iter([batch]))
    with pytest.raises(ShapeError, match="lacks model input 'x'"):
        collect_activation_histograms(relu_double_model(), [{"image": batch["x"]}])
    with pytest.raises(ConfigError, match="no calibration batches"):
        collect_activation_histograms(relu_double_model(), [])


def test_cache_round_trip_and_model_check(tmp_path: Path) -> None:
    model = relu_double_model()
    ranges = {"x": TensorRange(2.5, -3.0, 2.0), "r": TensorRange(1.25, 0.0, 2.0)}
    path = save_calibration_cache(tmp_path / "cache" / "calib.json", ranges, "entropy", model)
    assert not list(path.parent.glob(".*.tmp")), "the atomic write left a temporary file"
    assert load_calibration_cache(path, model) == ("entropy", ranges)
    assert ranges["x"].clipped() == (-2.5, 2.0)
    inferred = onnx.shape_inference.infer_shapes(model)
    assert model_digest(inferred) == model_digest(model)  # inferred value_info is not the model

    other = relu_double_model()
    other.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array(3.0, dtype=np.float32), "two"))
    with pytest.raises(InputFileError, match="made for another model"):
        load_calibration_cache(path, other)
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(InputFileError, match="not an edgevision calibration cache"):
        load_calibration_cache(tmp_path / "bad.json", model)
    with pytest.raises(InputFileError, match="no such calibration cache"):
        load_calibration_cache(tmp_path / "absent.json", model)


def test_image_folder_batches(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for k in range(5):
        image = np.full((30 + k, 40, 3), (10 * k, 100, 200), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / ("sub" if k else "") / f"{k}.png"), image)
    (tmp_path / "notes.txt").write_text("not an image")
    reader = ImageFolderBatches(
        tmp_path, "image", (16, 24), Preprocessing("BGR", (104.0, 117.0, 123.0)), batch_size=2
    )
    batches = list(reader)
    assert len(reader) == len(batches) == 3
    assert [batch["image"].shape for batch in batches] == [(2, 3, 16, 24), (2, 3, 16, 24), (1, 3, 16, 24)]
    np.testing.assert_allclose(batches[0]["image"][0, :, 5, 5], [0 - 104.0, 100 - 117.0, 200 - 123.0])
    assert len(list(reader)) == 3  # re-iterable
    spread = ImageFolderBatches(tmp_path, "image", (16, 24), Preprocessing(), limit=3)
    assert [path.name for path in spread.paths] == ["0.png", "2.png", "4.png"]


def test_image_folder_batches_reject_an_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no images"):
        ImageFolderBatches(tmp_path / "empty", "image", (16, 16), Preprocessing())
    with pytest.raises(InputFileError, match="not a folder"):
        ImageFolderBatches(tmp_path / "absent", "image", (16, 16), Preprocessing())
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ConfigError, match="batch_size"):
        ImageFolderBatches(tmp_path, "image", (16, 16), Preprocessing(), batch_size=0)
