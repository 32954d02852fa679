"""The verification protocols against hand-computed results: 10-fold accuracy, the threshold taken
from the training folds only, TAR at FAR, LFW's pairs.txt format, ORL pairs, rank-1."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgevision.errors import ConfigError, DatasetError, ShapeError
from edgevision.evaluation.plots import plot_roc_curves
from edgevision.evaluation.verification import (
    best_threshold,
    cosine_similarities,
    orl_identification_split,
    orl_pairs,
    rank1,
    read_pairs,
    roc_curve,
    ten_fold,
)


def folds_of(
    same_values: list[list[float]], different_values: list[list[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and labels laid out as pairs.txt: fold k = its same pairs, then its different."""
    similarities, same = [], []
    for same_fold, different_fold in zip(same_values, different_values):
        similarities += same_fold + different_fold
        same += [True] * len(same_fold) + [False] * len(different_fold)
    return np.array(similarities), np.array(same)


def test_ten_fold_gives_the_hand_computed_accuracy() -> None:
    # Every fold: same 0.9, 0.8; different 0.1, 0.2. Fold 3 has one same pair at 0.05, below
    # everything. Each fold's training pairs are best cut between 0.2 and 0.8 (one error at most),
    # so every threshold is 0.5; fold 3 scores 3/4, the others 4/4: mean 0.975, std 0.075
    # (deviations 0.025 x 9 and 0.225: variance (9 * 0.025^2 + 0.225^2) / 10 = 0.005625).
    same_values = [[0.9, 0.8] for _ in range(10)]
    same_values[3] = [0.9, 0.05]
    similarities, same = folds_of(same_values, [[0.1, 0.2]] * 10)
    result = ten_fold(similarities, same)
    assert result.fold_accuracies == (1.0, 1.0, 1.0, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert result.thresholds == (0.5,) * 10
    assert result.accuracy == pytest.approx(0.975, abs=1e-15)
    assert result.accuracy_std == pytest.approx(0.075, abs=1e-15)
    # LFW's standard error: sqrt(0.05625 / 9) / sqrt(10) = 0.025
    assert result.accuracy_standard_error == pytest.approx(0.025, abs=1e-15)
    assert (result.num_same, result.num_different) == (20, 20)


def test_the_threshold_comes_from_the_training_folds_only() -> None:
    # Folds 1-9 (same 0.9, different 0.1) are split perfectly by any threshold between 0.1 and
    # 0.9: alone they give the midpoint 0.5, where fold 0 (same 0.3, different 0.25) scores 1/2.
    # With fold 0 among the pairs the best cut is 0.275, which splits everything perfectly: a
    # threshold fitted on all pairs or on the test fold would give fold 0 a perfect score.
    similarities, same = folds_of([[0.3]] + [[0.9]] * 9, [[0.25]] + [[0.1]] * 9)
    result = ten_fold(similarities, same)
    assert result.fold_accuracies[0] == 0.5 and result.thresholds[0] == 0.5
    # Folds 1-9 train with fold 0 among their pairs: 0.275, right for them.
    assert result.fold_accuracies[1:] == (1.0,) * 9 and result.thresholds[1:] == pytest.approx((0.275,) * 9)
    assert result.accuracy == pytest.approx(0.95)


def test_best_threshold_reaches_the_best_accuracy_of_any_threshold() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        same = rng.random(40) < 0.5
        similarities = np.round(rng.normal(same * 0.6, 0.5), 1)  # rounded: many ties
        threshold, accuracy = best_threshold(similarities, same)
        assert accuracy == np.mean((similarities > threshold) == same)
        candidates = np.concatenate([similarities, similarities - 0.05, [similarities.min() - 1]])
        brute = max(np.mean((similarities > t) == same) for t in candidates)
        assert accuracy == brute


def test_best_threshold_prefers_the_lowest_of_equal_cuts_and_handles_one_class() -> None:
    # Cuts at 0.15 and 0.35 both get 3 of 4 right; the lowest wins.
    assert best_threshold(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1])) == (
        pytest.approx(0.15),
        0.75,
    )
    threshold, accuracy = best_threshold(np.array([0.2, 0.4]), np.array([True, True]))
    assert accuracy == 1.0 and threshold < 0.2
    assert best_threshold(np.array([0.2, 0.4]), np.array([False, False])) == (0.4, 1.0)


def test_ten_fold_takes_explicit_fold_ids() -> None:
    # The folds of the first test, interleaved: the ids, not the order, define them.
    same_values = [[0.9, 0.8] for _ in range(10)]
    same_values[3] = [0.9, 0.05]
    similarities, same = folds_of(same_values, [[0.1, 0.2]] * 10)
    fold_ids = np.repeat(np.arange(10), 4)
    order = np.random.default_rng(1).permutation(40)
    result = ten_fold(similarities[order], same[order], fold_ids[order])
    assert result.fold_accuracies[3] == 0.75 and result.accuracy == pytest.approx(0.975)


def test_tar_at_far_hand_case() -> None:
    # 2000 impostors at 0, 1/2000, ..., 1999/2000: FAR 1e-3 allows 2 above the threshold, which
    # is then the third highest, 0.9985. Genuine 0.999 and 0.9986 pass, 0.9985 and 0.5 do not.
    impostors = np.arange(2000) / 2000
    genuine = np.array([0.999, 0.9986, 0.9985, 0.5])
    similarities = np.concatenate([genuine, impostors])
    same = np.arange(len(similarities)) < 4
    result = ten_fold(similarities, same, folds=2)
    assert result.tar_threshold == 0.9985
    assert result.tar == 0.5 and result.far == 0.001 and result.far_target == 1e-3
    assert result.notes == ()


def test_tar_at_far_says_when_there_are_too_few_impostors() -> None:
    impostors = np.linspace(0.0, 0.5, 500)
    similarities = np.concatenate([[0.7, 0.5, 0.4], impostors])
    same = np.arange(len(similarities)) < 3
    result = ten_fold(similarities, same, folds=3)
    # floor(1e-3 * 500) = 0 impostors allowed: the threshold is the highest impostor, FAR is 0.
    assert result.tar_threshold == 0.5 and result.far == 0.0 and result.tar == pytest.approx(1 / 3)
    assert result.notes == (
        "only 500 impostor pairs: FAR 0.001 needs at least 1000, so the TAR is at FAR 0 "
        "(threshold = the highest impostor similarity)",
    )
    assert result.notes[0] in result.summary()


def test_result_to_json_round_trips() -> None:
    similarities, same = folds_of([[0.9, 0.8]] * 10, [[0.1, 0.2]] * 10)
    result = ten_fold(similarities, same)
    data = json.loads(json.dumps(result.to_json()))
    assert data["accuracy"] == 1.0 and data["thresholds"] == [0.5] * 10 and len(data["notes"]) == 1
    assert result.summary().startswith("accuracy 100.00% +- 0.00% (10 folds); TAR 100.00% at FAR 1e-03")


@pytest.mark.parametrize(
    "similarities, same, folds, far, error, message",
    [
        (
            [0.1, float("nan"), 0.3],
            [1, 0, 1],
            2,
            1e-3,
            ConfigError,
            "similarities must be finite, got nan at index 1",
        ),
        (
            [0.1, 0.2],
            [1, 0, 1],
            2,
            1e-3,
            ShapeError,
            r"same must be \(2,\) to match the similarities, got \(3,\)",
        ),
        ([0.1, 0.2], [1, 2], 2, 1e-3, ConfigError, "same must be bool or 0 / 1"),
        ([0.1, 0.2, 0.3], [1, 0, 1], 4, 1e-3, ConfigError, r"folds must be a whole number in \[2, 3\]"),
        ([0.1, 0.2, 0.3], [1, 0, 1], np.array([0, 0, 2]), 1e-3, ConfigError, "fold ids must cover 0 .. K-1"),
        (
            [0.1, 0.2, 0.3],
            [1, 0, 1],
            3,
            float("nan"),
            ConfigError,
            r"far must be a finite number in \(0, 1\)",
        ),
        (
            [0.1, 0.2, 0.3],
            [1, 1, 1],
            3,
            1e-3,
            ConfigError,
            "TAR at FAR needs both genuine and impostor pairs",
        ),
    ],
)
def test_ten_fold_refuses_bad_input(similarities, same, folds, far, error, message) -> None:
    with pytest.raises(error, match=message):
        ten_fold(np.array(similarities), np.array(same), folds, far=far)


PAIRS_TXT = """2\t2
Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\t3
Abdel_Madi_Shabneh\t1\tDean_Barker\t1
Abdel_Madi_Shabneh\t1\tGiancarlo_Fisichella\t1
Aaron_Sorkin 1 2
Zico 1 3
Zach_Safrin 1 Zydrunas_Ilgauskas 1
Zhu_Rongji 9 Zico 10
"""


def test_read_pairs_reads_the_official_format(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(PAIRS_TXT + "\n")  # a trailing blank line is tolerated
    pairs = read_pairs(path)
    assert len(pairs) == 8
    assert pairs.first[0] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert pairs.second[0] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"
    assert (pairs.first[2], pairs.second[2]) == (
        "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg",
        "Dean_Barker/Dean_Barker_0001.jpg",
    )
    assert (pairs.first[7], pairs.second[7]) == ("Zhu_Rongji/Zhu_Rongji_0009.jpg", "Zico/Zico_0010.jpg")
    assert pairs.same.tolist() == [True, True, False, False] * 2
    assert pairs.folds.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_read_pairs_reads_the_one_fold_dev_files(tmp_path: Path) -> None:
    path = tmp_path / "pairsDevTest.txt"
    path.write_text("1\nAaron_Sorkin\t1\t2\nZach_Safrin\t1\tZico\t3\n")
    pairs = read_pairs(path)
    assert pairs.same.tolist() == [True, False] and pairs.folds.tolist() == [0, 0]


def replace_line(number: int, text: str) -> str:
    lines = PAIRS_TXT.splitlines()
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "line 1: expected the header 'FOLDS PAIRS' (e.g. '10 300'), got an empty file"),
        (
            replace_line(1, "10 three"),
            "line 1: expected the header 'FOLDS PAIRS' (e.g. '10 300'), got '10 three'",
        ),
        (replace_line(1, "0 2"), "line 1: expected the header"),
        (
            replace_line(3, "Akhmed_Zakayev\t1\tX\t3"),
            "line 3: expected a same-person pair 'NAME N1 N2' with image numbers from 1, "
            "got 'Akhmed_Zakayev\\t1\\tX\\t3'",
        ),
        (replace_line(6, "Aaron_Sorkin 0 2"), "line 6: expected a same-person pair"),
        (replace_line(8, "Zach_Safrin 1 Zydrunas_Ilgauskas x"), "line 8: expected a different-person pair"),
        (replace_line(9, "Zico 9 Zico 10"), "line 9: a different-person pair names one person twice"),
        (
            PAIRS_TXT.replace("Zico\t1\t3\n", "").replace("Zico 1 3\n", ""),
            "line 7: expected a same-person pair",
        ),
        (
            "\n".join(PAIRS_TXT.splitlines()[:-1]),
            "ends at line 8: the header '2\t2' promises 8 pair lines, found 7",
        ),
        (PAIRS_TXT + "Zico 1 2\n", "line 10: past the last pair; the header '2\t2' promises 8 pair lines"),
    ],
)
def test_read_pairs_names_the_bad_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DatasetError) as caught:
        read_pairs(path)
    assert str(caught.value).startswith(f"LFW pairs file {path}")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_read_pairs_refuses_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="LFW pairs file not found"):
        read_pairs(tmp_path / "absent.txt")
    (tmp_path / "pairs.txt").write_bytes(b"1 1\nAaron\xff 1 2\n")
    with pytest.raises(DatasetError, match="line 2 is not UTF-8 text"):
        read_pairs(tmp_path / "pairs.txt")


def test_orl_pairs_cover_every_same_pair_and_as_many_distinct_different_pairs() -> None:
    pairs = orl_pairs(range(31, 41), seed=0)
    assert len(pairs) == 900 and pairs.same.sum() == 450
    same = {(a, b) for a, b, s in zip(pairs.first, pairs.second, pairs.same) if s}
    expected = {
        (f"s{p}/{i}.pgm", f"s{p}/{j}.pgm")
        for p in range(31, 41)
        for i, j in itertools.combinations(range(1, 11), 2)
    }
    assert same == expected
    different = [frozenset((a, b)) for a, b, s in zip(pairs.first, pairs.second, pairs.same) if not s]
    assert len(set(different)) == 450
    assert all(a.split("/")[0] != b.split("/")[0] for a, b in map(tuple, different))
    # Fold k: 45 same pairs of person 31 + k, then 45 different pairs, in order.
    assert pairs.folds.tolist() == np.repeat(np.arange(10), 90).tolist()
    for fold in range(10):
        block = slice(90 * fold, 90 * fold + 90)
        assert pairs.same[block].tolist() == [True] * 45 + [False] * 45
        assert {a.split("/")[0] for a in pairs.first[block][:45]} == {f"s{31 + fold}"}


def test_orl_pairs_are_seeded() -> None:
    a, b, c = orl_pairs(range(1, 4), seed=3), orl_pairs(range(1, 4), seed=3), orl_pairs(range(1, 4), seed=4)
    assert a.first == b.first and a.second == b.second
    assert (a.first, a.second) != (c.first, c.second)


def test_orl_pairs_refuse_bad_people() -> None:
    with pytest.raises(ConfigError, match="at least two distinct people"):
        orl_pairs([5, 5])
    with pytest.raises(ConfigError, match="images_per_person must be a whole number >= 2"):
        orl_pairs([1, 2], images_per_person=1)


def test_orl_identification_split() -> None:
    gallery, gallery_ids, probes, probe_ids = orl_identification_split([31, 32])
    assert gallery == [f"s31/{n}.pgm" for n in range(1, 6)] + [f"s32/{n}.pgm" for n in range(1, 6)]
    assert probes == [f"s31/{n}.pgm" for n in range(6, 11)] + [f"s32/{n}.pgm" for n in range(6, 11)]
    assert gallery_ids == probe_ids == [31] * 5 + [32] * 5


def test_rank1_hand_case_uses_cosine_not_euclidean_distance_or_raw_dot_products() -> None:
    gallery = np.array([[4.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # a at 0 deg, b at 90, c at 53.1
    probes = np.array([[3.0, 2.5], [0.05, 0.3], [0.8, 0.6], [1.0, 0.1]])  # at 39.8, 80.5, 36.9, 5.7 deg
    # Nearest in angle: c, b, c, a; the ids are c, b, c, b: 3 of 4. Euclidean distance would pick
    # a, b, c, c (2 of 4) and raw dot products a, b, a, a (1 of 4).
    assert rank1(gallery, ["a", "b", "c"], probes, ["c", "b", "c", "b"]) == 0.75
    assert gallery[0, 0] == 4.0 and probes[0, 0] == 3.0  # the caller's arrays are not normalised in place


def test_rank1_refuses_unknown_probe_identities_and_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="probe identities absent from the gallery .*: z"):
        rank1(np.eye(2), ["a", "b"], np.eye(2), ["a", "z"])
    with pytest.raises(ShapeError):
        rank1(np.eye(2), ["a", "b"], np.ones((2, 3)), ["a", "b"])


def test_cosine_similarities_and_roc_curve() -> None:
    first = np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    second = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    np.testing.assert_allclose(cosine_similarities(first, second), [1.0, 0.0, -math.sqrt(0.5)])
    fpr, tpr = roc_curve(np.array([0.9, 0.8, 0.8, 0.1]), np.array([True, False, True, False]))
    # Thresholds: above 0.9: nothing; 0.9: 1 same; 0.8 (tie): both 0.8 pairs; 0.1: everything.
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_plot_roc_curves_writes_a_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    same = np.arange(400) < 200
    similarities = rng.normal(same * 1.5, 1.0)
    curve = roc_curve(similarities, same)
    path = plot_roc_curves({"model": curve}, tmp_path / "roc.png", "synthetic", accuracy={"model": 0.77})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]
    with pytest.raises(ShapeError, match="ROC curve 'bad' must be two"):
        plot_roc_curves({"bad": (np.zeros(3), np.zeros(4))}, tmp_path / "bad.png", "x")
