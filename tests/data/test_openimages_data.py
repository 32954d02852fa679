"""Open Images V4 files: the official CSV/JSON formats, the reduced sample, hierarchy expansion, COCO."""

from __future__ import annotations

import csv
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgevision.data.coco import from_coco, read_coco_json, to_coco, write_coco_json
from edgevision.data.openimages import (
    BOX_COLUMNS,
    FLAG_COLUMNS,
    BoxAnnotations,
    ImageLabels,
    iter_box_annotations,
    load_class_descriptions,
    read_box_annotations,
    read_image_labels,
    to_normalised_boxes,
    to_pixel_boxes,
)
from edgevision.data.openimages_expansion import expand_boxes, expand_image_labels
from edgevision.data.openimages_hierarchy import ClassHierarchy, load_hierarchy
from edgevision.data.openimages_stats import class_statistics
from edgevision.errors import DatasetError

# Rows in the official format, as the V4 files write them (values from the V4 validation set).
OFFICIAL_CSV = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,"
    "IsInside\n"
    """0001eeaf4aed83f9,xclick,/m/0cmf2,1,0.022673031,0.9642005,0.07103825,0.80054647,0,0,0,0,0
000595fe6fee6369,xclick,/m/02wbm,1,0.000000,1.000000,0.000000,1.000000,0,0,1,0,0
000595fe6fee6369,xclick,/m/02xwb,1,0.141384,0.179676,0.676275,0.731707,0,0,0,0,0
000595fe6fee6369,xclick,/m/0cmx8,1,0.213549,0.253314,0.299335,0.354767,1,0,0,0,0
000595fe6fee6369,xclick,/m/0k4j,1,0.232695,0.288660,0.490022,0.545455,1,1,0,1,-1
"""
)
SPOON, KITCHEN_UTENSIL, TABLEWARE, KITCHENWARE, TOOL = (
    "/m/0cmx8",
    "/m/03hlz0c",
    "/m/04brg2",
    "/m/03_wxk",
    "/m/07k1x",
)
CAR, LAND_VEHICLE, VEHICLE = "/m/0k4j", "/m/01prls", "/m/07yv9"
FOOD, FRUIT = "/m/02wbm", "/m/02xwb"


@pytest.fixture(scope="module")
def oid_dir(data_dir: Path) -> Path:
    folder = data_dir / "openimages"
    if not (folder / "bbox_labels_600_hierarchy.json").is_file():
        pytest.skip(f"Open Images metadata not found at {folder}")
    return folder


@pytest.fixture(scope="module")
def hierarchy(oid_dir: Path) -> ClassHierarchy:
    return load_hierarchy(oid_dir / "bbox_labels_600_hierarchy.json")


@pytest.fixture()
def official_csv(tmp_path: Path) -> Path:
    path = tmp_path / "validation-annotations-bbox.csv"
    path.write_text(OFFICIAL_CSV)
    return path


# --- the real class list and hierarchy ---------------------------------------------------------


def test_real_class_list_and_hierarchy_load(oid_dir: Path, hierarchy: ClassHierarchy) -> None:
    names = load_class_descriptions(oid_dir / "class-descriptions-boxable.csv")
    assert len(names) == 601  # V4's boxable list (the "600" classes plus one)
    assert names["/m/01g317"] == "Person" and names[SPOON] == "Spoon"
    assert hierarchy.root == "/m/0bl9f" and hierarchy.root not in hierarchy
    assert set(hierarchy.classes) == set(names)  # every boxable class sits in the tree, nothing else
    assert hierarchy.ancestors("/m/01g317") == ()  # Person hangs from the root
    assert len(hierarchy.descendants("/m/0jbk")) > 100  # Animal


def test_leaf_box_expands_to_all_ancestors(hierarchy: ClassHierarchy) -> None:
    # Spoon's paths in bbox_labels_600_hierarchy.json, read by hand:
    #   Entity > Kitchenware > Kitchen utensil > Spoon
    #   Entity > Kitchenware > Tableware > Spoon
    #   Entity > Tool > Kitchen utensil > Spoon
    # so a Spoon box also counts for Kitchen utensil, Tableware, Kitchenware and Tool, each once
    # (the reference's expansion script writes Kitchen utensil twice), never for the root.
    assert set(hierarchy.ancestors(SPOON)) == {KITCHEN_UTENSIL, TABLEWARE, KITCHENWARE, TOOL}
    boxes = BoxAnnotations.from_arrays(["img"], [SPOON], [[0.1, 0.2, 0.3, 0.4]], group_of=[1])
    expanded = expand_boxes(boxes, hierarchy)
    assert len(expanded) == 5 and expanded.label_names[0] == SPOON
    assert Counter(expanded.label_names.tolist()) == Counter(
        [SPOON, KITCHEN_UTENSIL, TABLEWARE, KITCHENWARE, TOOL]
    )
    assert (expanded.image_ids == "img").all() and expanded.is_group_of.all()
    np.testing.assert_array_equal(expanded.boxes, np.repeat(boxes.boxes, 5, axis=0))
    # Car: Entity > Vehicle > Land vehicle > Car.
    car = expand_boxes(BoxAnnotations.from_arrays(["a"], [CAR], [[0, 0, 1, 1]]), hierarchy)
    assert car.label_names.tolist() == [CAR, LAND_VEHICLE, VEHICLE]


def test_label_expansion_positive_up_negative_down(hierarchy: ClassHierarchy) -> None:
    labels = ImageLabels.from_arrays(["a", "b"], [CAR, LAND_VEHICLE], [1, 0])
    expanded = expand_image_labels(labels, hierarchy)
    positive = expanded.label_names[expanded.image_ids == "a"].tolist()
    negative = expanded.label_names[expanded.image_ids == "b"].tolist()
    assert positive == [CAR, LAND_VEHICLE, VEHICLE]
    assert negative[0] == LAND_VEHICLE and set(negative[1:]) == set(hierarchy.descendants(LAND_VEHICLE))
    # Land vehicle has 15 sub-classes, and Car 2 more (Limousine, Van): 1 + 17 labels.
    assert CAR in negative and VEHICLE not in negative and len(negative) == 1 + 17
    assert (expanded.confidences[expanded.image_ids == "b"] == 0).all()
    with pytest.raises(DatasetError, match="verified"):
        expand_image_labels(ImageLabels.from_arrays(["a"], [CAR], [0.7]), hierarchy)
    with pytest.raises(DatasetError, match="not in the Open Images class hierarchy"):
        expand_boxes(BoxAnnotations.from_arrays(["a"], ["/m/0bl9f"], [[0, 0, 1, 1]]), hierarchy)


def test_hierarchy_from_a_small_tree() -> None:
    tree = {
        "LabelName": "/m/root",
        "Subcategory": [
            {"LabelName": "/m/a", "Subcategory": [{"LabelName": "/m/b"}, {"LabelName": "/m/c"}]},
            {"LabelName": "/m/d", "Subcategory": [{"LabelName": "/m/b"}], "Part": [{"LabelName": "/m/e"}]},
        ],
    }
    h = ClassHierarchy.from_json(tree)
    assert h.classes == ("/m/a", "/m/b", "/m/c", "/m/d")  # a Part is not a sub-class
    assert set(h.ancestors("/m/b")) == {"/m/a", "/m/d"}
    assert h.descendants("/m/a") == ("/m/b", "/m/c") and h.ancestors("/m/a") == ()
    assert h.with_descendants(["/m/d"]) == {"/m/d", "/m/b"}
    with pytest.raises(DatasetError, match="LabelName"):
        ClassHierarchy.from_json({"Subcategory": []})


# --- box CSV readers ---------------------------------------------------------------------------


def test_official_format(official_csv: Path) -> None:
    boxes = read_box_annotations(official_csv)
    assert len(boxes) == 5 and boxes.boxes.dtype == np.float32
    assert boxes.image_ids.tolist() == ["0001eeaf4aed83f9"] + ["000595fe6fee6369"] * 4
    np.testing.assert_allclose(boxes.boxes[0], [0.022673031, 0.07103825, 0.9642005, 0.80054647], rtol=1e-7)
    assert boxes.sources[0] == "xclick" and boxes.confidences.tolist() == [1.0] * 5
    np.testing.assert_array_equal(boxes.flags[4], [1, 1, 0, 1, -1])
    assert boxes.is_group_of.tolist() == [False, True, False, False, False]
    assert boxes.flag("IsOccluded").tolist() == [0, 0, 0, 1, 1]
    double = read_box_annotations(official_csv, box_dtype=np.float64)
    assert double.boxes[0, 0] == 0.022673031  # the CSV's value exactly, for the evaluation
    by_image = boxes.by_image()
    assert list(by_image) == ["0001eeaf4aed83f9", "000595fe6fee6369"]
    assert len(by_image["000595fe6fee6369"]) == 4


def test_filters_by_class_with_subclasses_and_by_flags(official_csv: Path, hierarchy: ClassHierarchy) -> None:
    assert read_box_annotations(official_csv, classes=[CAR]).label_names.tolist() == [CAR]
    assert len(read_box_annotations(official_csv, classes=[LAND_VEHICLE])) == 0
    # An Airplane is an Aircraft, a Vehicle: both boxes are vehicles.
    vehicles = read_box_annotations(official_csv, classes=[VEHICLE], hierarchy=hierarchy)
    assert vehicles.label_names.tolist() == ["/m/0cmf2", CAR]
    land = read_box_annotations(official_csv, classes=[LAND_VEHICLE], hierarchy=hierarchy)
    assert land.label_names.tolist() == [CAR]
    kitchen = read_box_annotations(official_csv, classes=[KITCHENWARE, FOOD], hierarchy=hierarchy)
    assert kitchen.label_names.tolist() == [FOOD, FRUIT, SPOON]  # Fruit is a Food
    occluded = read_box_annotations(official_csv, flags={"IsOccluded": 1, "IsGroupOf": 0})
    assert occluded.label_names.tolist() == [SPOON, CAR]
    assert len(read_box_annotations(official_csv, flags={"IsGroupOf": 1})) == 1
    chunks = list(iter_box_annotations(official_csv, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    with pytest.raises(DatasetError, match="unknown Open Images flag"):
        read_box_annotations(official_csv, flags={"IsCrowd": 1})


def test_reduced_variant(tmp_path: Path) -> None:
    path = tmp_path / "subset-train-annotations-bbox.csv"
    path.write_text(
        "ImageID,LabelName,Confidence,XMin,XMax,YMin,YMax,ClassName\n"
        "./images_openimages/train/5597a7ce89e452f2.jpg,/m/0dtln,1.0,0.245902,0.662763,0.017188,0.567187,Lamp\n"
        "\n"
        "./images_openimages/train/6f87a23baa88d631.jpg,/m/01g317,1.0,0.339286,0.400132,0.472472,0.718719,Person\n"
    )
    boxes = read_box_annotations(path)
    assert boxes.image_ids.tolist() == ["5597a7ce89e452f2", "6f87a23baa88d631"]  # the file stem
    assert boxes.label_names.tolist() == ["/m/0dtln", "/m/01g317"]
    np.testing.assert_allclose(boxes.boxes[1], [0.339286, 0.472472, 0.400132, 0.718719], rtol=1e-7)
    # Flags the reduced file lacks: IsGroupOf 0 (not a group), the others -1 (unknown); Source "".
    expected = [0 if name == "IsGroupOf" else -1 for name in FLAG_COLUMNS]
    np.testing.assert_array_equal(boxes.flags, [expected, expected])
    assert boxes.sources.tolist() == ["", ""]


def test_real_sample_reads(oid_dir: Path) -> None:
    boxes = read_box_annotations(oid_dir / "subset-validation-annotations-bbox.csv")
    assert len(boxes) == 807 and len(set(boxes.label_names.tolist())) == 13
    assert (boxes.boxes[:, :2] <= boxes.boxes[:, 2:]).all()
    assert all(len(image) == 16 for image in boxes.image_ids)


def test_malformed_files_raise_dataset_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DatasetError, match="not found"):
        read_box_annotations(missing)
    no_column = tmp_path / "a.csv"
    no_column.write_text("ImageID,LabelName,XMin,XMax,YMin\nx,/m/a,0,1,0\n")
    with pytest.raises(DatasetError, match="lacks the column.*YMax"):
        read_box_annotations(no_column)
    bad_number = tmp_path / "b.csv"
    bad_number.write_text(
        ",".join(BOX_COLUMNS) + "\n" + "x,s,/m/a,1,0,1,0,1,0,0,0,0,0\nx,s,/m/a,1,0,oops,0,1,0,0,0,0,0\n"
    )
    with pytest.raises(DatasetError, match="line 3: 'oops'"):
        read_box_annotations(bad_number)
    short_row = tmp_path / "c.csv"
    short_row.write_text(",".join(BOX_COLUMNS) + "\nx,s,/m/a,1,0,1\n")
    with pytest.raises(DatasetError, match="line 2: 6 fields"):
        read_box_annotations(short_row)
    empty = tmp_path / "d.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match="no header"):
        read_box_annotations(empty)
    with pytest.raises(DatasetError, match="not found"):
        load_hierarchy(tmp_path / "h.json")
    (tmp_path / "h.json").write_text("{")
    with pytest.raises(DatasetError, match="not JSON"):
        load_hierarchy(tmp_path / "h.json")


def test_text_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    # Latin-1 "é" (0xE9) on line 1,500: past the first chunk and the decoder's first 8 KiB block,
    # so the line is found exactly, not "after" some chunk.
    rows = [f"img{i},s,/m/a,1,0,1,0,1,0,0,0,0,0\n".encode() for i in range(2000)]
    rows[1498] = rows[1498].replace(b"/m/a", b"/m/caf\xe9")
    boxes = tmp_path / "boxes.csv"
    boxes.write_bytes((",".join(BOX_COLUMNS) + "\n").encode() + b"".join(rows))
    with pytest.raises(DatasetError, match=r"boxes.csv line 1500 is not UTF-8 text \(byte 0xe9\)$"):
        read_box_annotations(boxes, chunk_rows=256)
    names = tmp_path / "class-descriptions-boxable.csv"
    names.write_bytes(b"/m/a,Apple\n/m/b,Caf\xe9\n")
    with pytest.raises(DatasetError, match=r"class descriptions .*line 2 is not UTF-8 text"):
        load_class_descriptions(names)


def test_image_labels(tmp_path: Path, hierarchy: ClassHierarchy) -> None:
    path = tmp_path / "validation-annotations-human-imagelabels-boxable.csv"
    path.write_text(
        "ImageID,Source,LabelName,Confidence\n"
        "0001eeaf4aed83f9,verification,/m/0cmf2,1\n"
        "000595fe6fee6369,verification,/m/0k4j,0\n"
        "000595fe6fee6369,verification,/m/0cmx8,1\n"
    )
    labels = read_image_labels(path)
    assert labels.confidences.tolist() == [1, 0, 1] and labels.is_positive.tolist() == [True, False, True]
    assert labels.sources[0] == "verification"
    assert read_image_labels(path, classes=[LAND_VEHICLE], hierarchy=hierarchy).label_names.tolist() == [CAR]


# --- conversions -------------------------------------------------------------------------------


def test_pixel_conversion() -> None:
    boxes = np.array([[0.25, 0.5, 0.75, 1.0]], dtype=np.float32)
    pixels = to_pixel_boxes(boxes, 640, 480)
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, [[160, 240, 480, 480]])
    np.testing.assert_array_equal(to_normalised_boxes(pixels, 640, 480), boxes)
    one = BoxAnnotations.from_arrays(["a"], ["/m/a"], boxes)
    np.testing.assert_array_equal(one.pixel_boxes(640, 480), pixels)


def test_coco_round_trip(official_csv: Path, tmp_path: Path) -> None:
    boxes = read_box_annotations(official_csv)
    sizes = {"0001eeaf4aed83f9": (1024, 683), "000595fe6fee6369": (800, 600), "no_boxes": (10, 20)}
    names = {"/m/0cmf2": "Airplane", FOOD: "Food", FRUIT: "Fruit", SPOON: "Spoon", CAR: "Car"}
    coco = to_coco(boxes, sizes, names)
    assert [c["name"] for c in coco["categories"]] == list(names.values())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 5
    food = coco["annotations"][1]
    assert food["bbox"] == [0.0, 0.0, 800.0, 600.0] and food["iscrowd"] == 1 and food["area"] == 480000.0
    car = coco["annotations"][4]
    expected = [0.232695 * 800, 0.490022 * 600, 0.055965 * 800, 0.055433 * 600]
    np.testing.assert_allclose(car["bbox"], expected, rtol=1e-6)  # from float32 boxes
    path = write_coco_json(tmp_path / "coco.json", coco)
    back, back_sizes = from_coco(read_coco_json(path))
    assert back_sizes == sizes
    assert back.image_ids.tolist() == boxes.image_ids.tolist()
    assert back.label_names.tolist() == boxes.label_names.tolist()
    np.testing.assert_allclose(back.boxes, boxes.boxes, atol=1e-7)
    np.testing.assert_array_equal(back.flags, boxes.flags)
    assert back.sources.tolist() == boxes.sources.tolist()
    with pytest.raises(DatasetError, match="no image size"):
        to_coco(boxes, {"0001eeaf4aed83f9": (1, 1)}, names)


def test_from_foreign_coco() -> None:
    coco = {
        "images": [{"id": 7, "file_name": "dir/abc.jpg", "width": 200, "height": 100}],
        "categories": [{"id": 3, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [20, 10, 100, 50], "iscrowd": 1}],
    }
    boxes, sizes = from_coco(coco)
    assert sizes == {"abc": (200, 100)} and boxes.label_names.tolist() == ["person"]
    np.testing.assert_allclose(boxes.boxes, [[0.1, 0.1, 0.6, 0.6]])
    np.testing.assert_array_equal(boxes.flags, [[-1, -1, 1, -1, -1]])
    with pytest.raises(DatasetError, match="malformed COCO"):
        from_coco({"images": [], "categories": [], "annotations": [{"image_id": 1}]})


# --- statistics of the real sample -------------------------------------------------------------

# Boxes per split and images per class of the 13-class sample (the table in docs/benchmarks.md).
SAMPLE_STATS = {
    "Plate": (4814, 58, 207, 2039),
    "Box": (4684, 89, 226, 2245),
    "Traffic sign": (4576, 17, 43, 2290),
    "Lamp": (3463, 70, 112, 1612),
    "Car": (2477, 189, 540, 3103),
    "Person": (2753, 109, 333, 3146),
    "Bottle": (2974, 59, 159, 2776),
    "Bird": (1975, 77, 253, 2258),
    "Ball": (1920, 66, 196, 1796),
    "Laptop": (1961, 19, 72, 1822),
    "Shirt": (1716, 18, 52, 1583),
    "Jacket": (1386, 14, 43, 1334),
    "Clock": (1138, 22, 51, 913),
}


def test_real_sample_class_statistics(oid_dir: Path) -> None:
    stats = class_statistics(oid_dir)
    assert stats.splits == ("train", "validation", "test")
    assert [stats.names[mid] for mid in stats.classes] == list(SAMPLE_STATS)
    for mid in stats.classes:
        train, validation, test, images = SAMPLE_STATS[stats.names[mid]]
        assert [stats.boxes[s].get(mid, 0) for s in stats.splits] == [train, validation, test]
        assert stats.images[mid] == images
    # The same counts, independently, from the files' own ClassName column.
    for split in stats.splits:
        with open(oid_dir / f"subset-{split}-annotations-bbox.csv", newline="") as handle:
            counted = Counter(row["ClassName"] for row in csv.DictReader(handle))
        assert counted == Counter({stats.names[mid]: n for mid, n in stats.boxes[split].items()})
    assert sum(stats.split_total(s) for s in stats.splits) == 38931


# --- memory bound on a 1M-row file -------------------------------------------------------------

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
SYNTHETIC_MIDS = [f"/m/0x{k:04d}" for k in range(16)]  # 9 characters each: fixed-width rows


def _text(text: str, rows: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (rows, len(text)))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


def write_synthetic_csv(path: Path, rows: int, seed: int = 0, block: int = 250_000) -> np.ndarray:
    """Write ``rows`` boxes in the official format (8 boxes an image, 16 classes); return the
    boxes per class. Rows are fixed-width byte matrices, so writing takes well under a second."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(SYNTHETIC_MIDS), dtype=np.int64)
    mids = np.frombuffer("".join(SYNTHETIC_MIDS).encode(), dtype=np.uint8).reshape(len(SYNTHETIC_MIDS), -1)
    with open(path, "wb") as handle:
        handle.write((",".join(BOX_COLUMNS) + "\n").encode())
        for start in range(0, rows, block):
            n = min(block, rows - start)
            image = (start + np.arange(n)) // 8
            cls = rng.integers(0, len(SYNTHETIC_MIDS), n)
            counts += np.bincount(cls, minlength=len(SYNTHETIC_MIDS))
            x1, y1 = rng.integers(0, 500_000, n), rng.integers(0, 500_000, n)
            x2, y2 = x1 + rng.integers(1, 500_000, n), y1 + rng.integers(1, 500_000, n)
            flags = (rng.integers(0, 2, (n, 5)) + ord("0")).astype(np.uint8)
            parts = [HEX[(image[:, None] >> (4 * np.arange(15, -1, -1))) & 15], _text(",xclick,", n)]
            parts += [mids[cls], _text(",1,", n)]
            for value in (x1, x2, y1, y2):
                parts += [_text("0.", n), _digits(value, 6), _text(",", n)]
            for k in range(5):
                parts += [flags[:, k : k + 1], _text("," if k < 4 else "\n", n)]
            handle.write(np.concatenate(parts, axis=1).tobytes())
    return counts


MEMORY_BOUND = 32 * 2**20  # bytes of peak Python/numpy allocation while streaming


@pytest.mark.slow
def test_one_million_rows_stream_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "train-annotations-bbox.csv"
    counts = write_synthetic_csv(path, 1_000_000)
    assert path.stat().st_size > 80 * 10**6  # 82 MB of CSV
    tracemalloc.start()
    try:
        start = time.perf_counter()
        base = tracemalloc.get_traced_memory()[0]
        boxes = read_box_annotations(path, classes=[SYNTHETIC_MIDS[0]])
        current, peak = tracemalloc.get_traced_memory()
        elapsed = time.perf_counter() - start
    finally:
        tracemalloc.stop()
    assert len(boxes) == counts[0]  # about 62,500 boxes kept
    assert (boxes.label_names == SYNTHETIC_MIDS[0]).all()
    assert (boxes.boxes[:, 2:] > boxes.boxes[:, :2]).all()
    growth = peak - base
    print(f"1M rows: kept {len(boxes)}, peak growth {growth / 2**20:.1f} MiB, {elapsed:.1f} s traced")
    assert growth < MEMORY_BOUND, f"peak growth {growth / 2**20:.1f} MiB"
