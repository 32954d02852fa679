"""Face verification and identification protocols: LFW's 10-fold accuracy, TAR at a fixed FAR,
the same protocol on ORL pairs, and rank-1 identification.

Scores are similarities (higher = more alike, e.g. cosine); a pair is called "same" when its
similarity is strictly above the threshold. The protocol (LFW, Huang et al. 2007, "View 2"):
the pairs fall in K folds; for each fold the threshold is the one that classifies the other K - 1
folds best, and the accuracy is measured on the held-out fold with that threshold; the result is
the mean over folds (with the standard deviation, as most papers print it, and LFW's standard
error of the mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevision.data.io import not_utf8_error
from edgevision.errors import ConfigError, DatasetError, ShapeError
from edgevision.validation import check_number

LFW_IMAGE = "{name}/{name}_{number:04d}.jpg"
ORL_IMAGE = "s{person}/{number}.pgm"


@dataclass(frozen=True)
class Pairs:
    """Image pairs of a verification protocol, in protocol order.

    Attributes:
        first, second: ``P`` image paths relative to the data set's root (LFW:
            ``name/name_0001.jpg``; ORL: ``s31/1.pgm``).
        same: ``(P,)`` bool, whether the two images show one person.
        folds: ``(P,)`` int64 fold of each pair, ``0 .. K-1``.
    """

    first: tuple[str, ...]
    second: tuple[str, ...]
    same: np.ndarray
    folds: np.ndarray

    def __len__(self) -> int:
        return len(self.first)


@dataclass(frozen=True)
class VerificationResult:
    """The K-fold verification accuracy and TAR at a fixed FAR of one set of similarities.

    Attributes:
        accuracy: mean of the per-fold accuracies, in [0, 1].
        accuracy_std: their standard deviation over folds (ddof 0, as InsightFace and FaceNet print).
        accuracy_standard_error: LFW's standard error of the mean, ``std(ddof=1) / sqrt(K)``.
        fold_accuracies: accuracy on each held-out fold.
        thresholds: the similarity threshold used on each fold, chosen on the other folds.
        tar: true-accept rate (genuine pairs above :attr:`tar_threshold`), over all pairs.
        far: the false-accept rate actually reached at that threshold (at most :attr:`far_target`).
        far_target: the FAR asked for (1e-3 by default).
        tar_threshold: the similarity threshold of :attr:`tar`.
        num_same, num_different: genuine and impostor pairs.
        notes: caveats a report must print with the numbers (e.g. too few impostor pairs).
    """

    accuracy: float
    accuracy_std: float
    accuracy_standard_error: float
    fold_accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]
    tar: float
    far: float
    far_target: float
    tar_threshold: float
    num_same: int
    num_different: int
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples as lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }

    def summary(self) -> str:
        """One line for a report, e.g. ``accuracy 97.50% +- 7.50% (10 folds); TAR 50.00% at FAR 1e-03``."""
        line = (
            f"accuracy {100 * self.accuracy:.2f}% +- {100 * self.accuracy_std:.2f}% "
            f"({len(self.fold_accuracies)} folds); TAR {100 * self.tar:.2f}% at FAR {self.far_target:.0e}"
        )
        return "; ".join([line, *self.notes])


def read_pairs(path: str | Path) -> Pairs:
    """Read an LFW pairs file (``pairs.txt``; ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` too).

    The format: a header ``K N`` (``10 300`` for ``pairs.txt``; the dev files have ``N`` alone, one
    fold), then K blocks of N same-person lines ``name n1 n2`` followed by N different-person lines
    ``name1 n1 name2 n2``, fields separated by tabs or spaces; image ``n`` of ``name`` is
    ``name/name_000n.jpg``. Fold k is the k-th such block, as the protocol defines.

    Raises:
        DatasetError: the file is missing, not UTF-8, or malformed (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"LFW pairs file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise not_utf8_error(path, "LFW pairs file") from None
    while lines and not lines[-1].strip():
        lines.pop()
    header = lines[0].split() if lines else []
    counts = [_whole(field) for field in header]
    if len(header) not in (1, 2) or None in counts or 0 in counts:
        got = repr(lines[0][:60]) if lines else "an empty file"
        raise DatasetError(
            f"LFW pairs file {path} line 1: expected the header 'FOLDS PAIRS' (e.g. '10 300'), got {got}"
        )
    folds, per_block = (1, counts[0]) if len(counts) == 1 else counts
    expected = 2 * folds * per_block
    first, second, same = [], [], []
    # Lines are read before their count is checked: a line lost or added inside a block shifts
    # the same/different layout, and the first line that no longer fits is the better clue.
    for index, line in enumerate(lines[1 : expected + 1]):
        is_same = (index // per_block) % 2 == 0
        a, b = _parse_pair(line, is_same, f"LFW pairs file {path} line {index + 2}")
        first.append(a)
        second.append(b)
        same.append(is_same)
    promise = f"the header '{lines[0].strip()}' promises {expected} pair lines"
    if len(lines) - 1 < expected:
        raise DatasetError(
            f"LFW pairs file {path} ends at line {len(lines)}: {promise}, found {len(lines) - 1}"
        )
    if len(lines) - 1 > expected:
        raise DatasetError(f"LFW pairs file {path} line {expected + 2}: past the last pair; {promise}")
    fold_ids = np.repeat(np.arange(folds, dtype=np.int64), 2 * per_block)
    return Pairs(tuple(first), tuple(second), np.array(same, dtype=bool), fold_ids)


def _whole(text: str) -> int | None:
    """``text`` as a whole number >= 0, else None."""
    return int(text) if text.isascii() and text.isdigit() else None


def _parse_pair(line: str, same: bool, where: str) -> tuple[str, str]:
    """The two image paths of one pairs-file line, or a :class:`DatasetError` naming ``where``."""
    fields = line.split()
    if same:
        expected = "a same-person pair 'NAME N1 N2'"
        ok = len(fields) == 3
        names, numbers = (fields[:1] * 2, fields[1:]) if ok else ([], [])
    else:
        expected = "a different-person pair 'NAME1 N1 NAME2 N2'"
        ok = len(fields) == 4
        names, numbers = (fields[0::2], fields[1::2]) if ok else ([], [])
    images = [_whole(number) for number in numbers]
    if not ok or None in images or 0 in images:
        raise DatasetError(
            f"{where}: expected {expected} with image numbers from 1, got {line.strip()[:80]!r}"
        )
    if not same and names[0] == names[1]:
        raise DatasetError(f"{where}: a different-person pair names one person twice: {line.strip()[:80]!r}")
    first, second = (LFW_IMAGE.format(name=name, number=number) for name, number in zip(names, images))
    return first, second


def orl_pairs(people: Sequence[int], images_per_person: int = 10, *, seed: int = 0, folds: int = 10) -> Pairs:
    """Verification pairs over ORL subjects ``people`` (e.g. ``range(31, 41)``), in ``folds`` folds.

    Every same-person pair (``n (n-1) / 2`` per person: 450 for ten people of 10 images) and as
    many different-person pairs, drawn without repetition from all of them with ``seed``. The split
    is deterministic: the same pairs, listed person by person, and the drawn different pairs, in
    drawing order, are each cut into ``folds`` contiguous near-equal blocks; fold k is same-block k
    then different-block k (for ten people: fold k holds all same pairs of the k-th person). Paths
    are ORL's ``s{person}/{n}.pgm``.

    Raises:
        ConfigError: fewer than two people, a repeated person, or fewer than two images each.
    """
    people = list(people)
    if len(people) < 2 or len(set(people)) != len(people):
        raise ConfigError(f"ORL pairs need at least two distinct people, got {people}")
    if isinstance(images_per_person, bool) or not isinstance(images_per_person, int) or images_per_person < 2:
        raise ConfigError(f"images_per_person must be a whole number >= 2, got {images_per_person!r}")
    _check_fold_count(folds, len(people) * math.comb(images_per_person, 2))
    numbers = range(1, images_per_person + 1)
    same = [((p, i), (p, j)) for p in people for i in numbers for j in numbers if i < j]
    images = [(p, i) for p in people for i in numbers]
    different = [(a, b) for index, a in enumerate(images) for b in images[index + 1 :] if a[0] != b[0]]
    chosen = np.random.default_rng(seed).choice(len(different), size=len(same), replace=False)
    different = [different[i] for i in chosen]
    same_blocks = np.array_split(np.arange(len(same)), folds)
    different_blocks = np.array_split(np.arange(len(different)), folds)
    ordered, fold_ids, is_same = [], [], []
    for fold in range(folds):
        for kind, block, label in (
            (same, same_blocks[fold], True),
            (different, different_blocks[fold], False),
        ):
            ordered += [kind[i] for i in block]
            fold_ids += [fold] * len(block)
            is_same += [label] * len(block)
    path = [tuple(ORL_IMAGE.format(person=p, number=n) for p, n in pair) for pair in ordered]
    return Pairs(
        tuple(a for a, _ in path),
        tuple(b for _, b in path),
        np.array(is_same),
        np.array(fold_ids, dtype=np.int64),
    )


def orl_identification_split(
    people: Sequence[int], images_per_person: int = 10, gallery_per_person: int = 5
) -> tuple[list[str], list[int], list[str], list[int]]:
    """Gallery paths and ids, probe paths and ids over ORL subjects ``people``: images
    ``1 .. gallery_per_person`` of each person in the gallery, the rest as probes (5 / 5 by
    default). A fixed split, not a random one, so every run and model sees the same task."""
    if not 1 <= gallery_per_person < images_per_person:
        raise ConfigError(f"gallery_per_person must be in [1, {images_per_person}), got {gallery_per_person}")
    gallery = [(p, n) for p in people for n in range(1, gallery_per_person + 1)]
    probes = [(p, n) for p in people for n in range(gallery_per_person + 1, images_per_person + 1)]
    return (
        [ORL_IMAGE.format(person=p, number=n) for p, n in gallery],
        [p for p, _ in gallery],
        [ORL_IMAGE.format(person=p, number=n) for p, n in probes],
        [p for p, _ in probes],
    )


def cosine_similarities(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarities ``(P,)`` float64 of two ``(P, D)`` embedding arrays."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.ndim != 2 or first.shape != second.shape:
        raise ShapeError(
            f"embeddings must be two (P, D) arrays of one shape, got {first.shape} and {second.shape}"
        )
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return np.einsum("pd,pd->p", first, second) / np.maximum(norms, np.finfo(np.float64).tiny)


def best_threshold(similarities: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold that classifies these pairs best (same iff similarity > threshold), and its
    accuracy.

    Every distinct way to cut the sorted similarities is tried: a midpoint between two
    consecutive distinct values, just below the lowest (all "same") and the highest (all
    "different"), so the best accuracy over all thresholds is found exactly, not on a grid.
    Of equally good cuts the lowest threshold is taken (as a grid search that keeps the first
    best does).
    """
    similarities = np.asarray(similarities, dtype=np.float64)
    same = _check_same(same, len(similarities))
    order = np.argsort(similarities, kind="stable")
    values, labels = similarities[order], same[order]
    count = len(values)
    # Cut i: the i lowest pairs are called different, the rest same.
    correct = np.concatenate([[0], np.cumsum(~labels)]) + np.concatenate([np.cumsum(labels[::-1])[::-1], [0]])
    cuttable = np.ones(count + 1, dtype=bool)
    cuttable[1:-1] = values[1:] > values[:-1]  # no cut between equal similarities
    cut = int(np.flatnonzero(cuttable)[np.argmax(correct[cuttable])])
    if cut == 0:
        threshold = np.nextafter(values[0], -np.inf)
    elif cut == count:
        threshold = values[-1]
    else:
        low, high = values[cut - 1], values[cut]
        middle = low + (high - low) / 2
        threshold = middle if middle < high else low  # adjacent floats: the midpoint rounds up
    return float(threshold), float(correct[cut]) / count


def ten_fold(
    similarities: np.ndarray, same: np.ndarray, folds: int | np.ndarray = 10, *, far: float = 1e-3
) -> VerificationResult:
    """The K-fold verification protocol over pair similarities, with TAR at FAR ``far``.

    Args:
        similarities: ``(P,)`` finite pair similarities (e.g. :func:`cosine_similarities`).
        same: ``(P,)`` bool (or 0 / 1), whether each pair shows one person.
        folds: a number K of contiguous near-equal folds in the given order (LFW's layout when the
            pairs are in ``pairs.txt`` order: 10 blocks of 600); or ``(P,)`` fold ids
            ``0 .. K-1`` (:attr:`Pairs.folds`).
        far: the false-accept rate of the TAR, in (0, 1).

    The threshold of fold k is :func:`best_threshold` of the pairs outside fold k only.
    """
    similarities = np.asarray(similarities, dtype=np.float64)
    if similarities.ndim != 1 or len(similarities) < 2:
        raise ShapeError(f"similarities must be (P,) with P >= 2, got shape {similarities.shape}")
    if not np.isfinite(similarities).all():
        index = int(np.flatnonzero(~np.isfinite(similarities))[0])
        raise ConfigError(f"similarities must be finite, got {similarities[index]} at index {index}")
    same = _check_same(same, len(similarities))
    fold_ids = _fold_ids(folds, len(similarities))
    far = check_number("far", far, 0.0, 1.0, low_open=True, high_open=True)
    accuracies, thresholds = [], []
    for fold in range(int(fold_ids.max()) + 1):
        test = fold_ids == fold
        threshold, _ = best_threshold(similarities[~test], same[~test])
        accuracies.append(float(np.mean((similarities[test] > threshold) == same[test])))
        thresholds.append(threshold)
    tar, reached, tar_threshold, notes = _tar_at_far(similarities, same, far)
    return VerificationResult(
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        accuracy_standard_error=float(np.std(accuracies, ddof=1) / math.sqrt(len(accuracies))),
        fold_accuracies=tuple(accuracies),
        thresholds=tuple(thresholds),
        tar=tar,
        far=reached,
        far_target=far,
        tar_threshold=tar_threshold,
        num_same=int(same.sum()),
        num_different=int((~same).sum()),
        notes=notes,
    )


def _tar_at_far(
    similarities: np.ndarray, same: np.ndarray, far: float
) -> tuple[float, float, float, tuple[str, ...]]:
    """TAR, the FAR reached, the threshold, and notes. The threshold is the (k+1)-th highest
    impostor similarity with ``k = floor(far * impostors)``, so at most k impostors pass it."""
    impostors, genuine = np.sort(similarities[~same])[::-1], similarities[same]
    if not len(impostors) or not len(genuine):
        raise ConfigError("TAR at FAR needs both genuine and impostor pairs")
    allowed = math.floor(far * len(impostors) + 1e-9)  # 1e-3 * 3000 is 3.0000000000000004
    threshold = impostors[allowed]
    notes = ()
    if allowed == 0:
        notes = (
            f"only {len(impostors)} impostor pairs: FAR {far:g} needs at least {math.ceil(1 / far - 1e-9)}, "
            "so the TAR is at FAR 0 (threshold = the highest impostor similarity)",
        )
    reached = float(np.mean(impostors > threshold))
    return float(np.mean(genuine > threshold)), reached, float(threshold), notes


def roc_curve(similarities: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-accept rates ``(T,)`` at every distinct threshold, from (0, 0) to (1, 1)."""
    similarities = np.asarray(similarities, dtype=np.float64)
    same = _check_same(same, len(similarities))
    order = np.argsort(-similarities, kind="stable")
    values, labels = similarities[order], same[order]
    last = np.r_[values[1:] < values[:-1], True]  # the last pair of each run of equal similarities
    accepted_same = np.cumsum(labels)[last]
    accepted_different = np.cumsum(~labels)[last]
    tpr = np.r_[0.0, accepted_same / max(int(same.sum()), 1)]
    fpr = np.r_[0.0, accepted_different / max(int((~same).sum()), 1)]
    return fpr, tpr


def rank1(
    gallery_embeddings: np.ndarray,
    gallery_ids: Sequence[Any],
    probe_embeddings: np.ndarray,
    probe_ids: Sequence[Any],
) -> float:
    """Closed-set rank-1 identification rate: the fraction of probes whose most similar gallery
    embedding (cosine; the first in gallery order on a tie) has the probe's identity.

    Args:
        gallery_embeddings: ``(G, D)``; gallery_ids: ``G`` identities.
        probe_embeddings: ``(Q, D)``; probe_ids: ``Q`` identities, each present in the gallery.
    """
    gallery = np.asarray(gallery_embeddings, dtype=np.float64)
    probes = np.asarray(probe_embeddings, dtype=np.float64)
    if gallery.ndim != 2 or probes.ndim != 2 or gallery.shape[1] != probes.shape[1] or not len(probes):
        raise ShapeError(
            f"embeddings must be (G, D) and (Q, D) with Q >= 1, got {gallery.shape} and {probes.shape}"
        )
    if len(gallery_ids) != len(gallery) or len(probe_ids) != len(probes):
        raise ShapeError(
            f"{len(gallery_ids)} gallery ids for {len(gallery)} embeddings, "
            f"{len(probe_ids)} probe ids for {len(probes)}"
        )
    missing = sorted(map(str, set(probe_ids) - set(gallery_ids)))
    if missing:
        raise ConfigError(
            f"probe identities absent from the gallery (closed-set rank-1): {', '.join(missing[:5])}"
        )
    tiny = np.finfo(np.float64).tiny
    gallery = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), tiny)
    probes = probes / np.maximum(np.linalg.norm(probes, axis=1, keepdims=True), tiny)
    nearest = np.argmax(probes @ gallery.T, axis=1)
    return float(np.mean([gallery_ids[g] == p for g, p in zip(nearest, probe_ids)]))


def _check_same(same: np.ndarray, count: int) -> np.ndarray:
    same = np.asarray(same)
    if same.shape != (count,):
        raise ShapeError(f"same must be ({count},) to match the similarities, got {same.shape}")
    if same.dtype != bool and not np.isin(same, (0, 1)).all():
        raise ConfigError("same must be bool or 0 / 1")
    return same.astype(bool)


def _check_fold_count(folds: int, count: int) -> None:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or not 2 <= folds <= count:
        raise ConfigError(f"folds must be a whole number in [2, {count}] (the pair count), got {folds!r}")


def _fold_ids(folds: int | np.ndarray, count: int) -> np.ndarray:
    """``(count,)`` fold ids: given, or K contiguous near-equal blocks in order."""
    if np.ndim(folds) == 0:
        _check_fold_count(folds, count)
        return np.repeat(np.arange(folds), [len(block) for block in np.array_split(np.arange(count), folds)])
    ids = np.asarray(folds)
    if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer):
        raise ShapeError(f"fold ids must be ({count},) integers, got {ids.dtype} {ids.shape}")
    present = np.unique(ids)
    if len(present) < 2 or present[0] != 0 or present[-1] != len(present) - 1:
        raise ConfigError(f"fold ids must cover 0 .. K-1 with K >= 2, got {present.tolist()[:12]}")
    return ids
