"""The schema of a plan's ``manifest.json``: the type, range or choices of every value in it.

:func:`edgevision.deploy.plan.read_plan` checks a manifest against it before using any value, and
:func:`edgevision.deploy.plan.write_plan` before writing one, so a plan that is written can be read.
The choices (backends, calibrators, optimisation levels) are those of the modules that use them;
the bounds are generous for real plans and keep a crafted manifest from costing time or memory.
"""

from __future__ import annotations

import functools
from typing import Any

from edgevision.deploy.schema import (
    Array,
    Boolean,
    Choice,
    Either,
    Integer,
    Nullable,
    Number,
    Record,
    Table,
    Text,
)

# Intra-op threads a plan's tactic may name: more than any machine here has; at load the engine
# takes at most this machine's cores (edgevision.deploy.runtime).
MAX_THREADS = 1024
MAX_INPUT_SIDE = 16384  # pixels: the largest H or W a plan may record as its built size
MAX_MEMBERS = 32  # members of a plan file: the manifest's list and the zip's directory
# numpy dtype names of the tensor types a binding may have
DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "bool",
)
SHA256 = Text(64, "[0-9a-f]{64}")
MEMBER_NAME = Text(128, r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SHORT = Text(128)
# What a binding's preprocessing records (edgevision.data.preprocessing.Preprocessing), or {}
PREPROCESSING = Record(
    {
        "channel_order": Choice(("BGR", "RGB")),
        "mean": Array(Number(), 3, 3),
        "std": Array(Number(positive=True), 3, 3),
        "pixels": Boolean(),
    },
    optional=frozenset({"pixels"}),
    or_empty=True,
)
BINDING = Record(
    {
        "name": Text(1024),
        "dtype": Choice(DTYPES),
        # a fixed size, or a dynamic axis: its name or the exporter's expression of other axes
        "shape": Array(Either((Integer(0, 2**31 - 1), Text(1024))), 0, 16),
        "preprocessing": PREPROCESSING,
    }
)
PLUGIN = Record({"domain": SHORT, "op_type": SHORT, "version": Integer(1, 10**6)})
SOURCE = Record(
    {
        "model": SHORT,  # a registry name
        "weights": Text(4096),  # a path
        "weights_sha256": SHA256,
        "onnx": Text(4096),
        "onnx_sha256": SHA256,
        "input_size": Array(Integer(1, MAX_INPUT_SIDE), 2, 2),
        # the registry model's config options its weights imply (FaceBoxes' landmark head)
        "options": Table(SHORT, Boolean(), 16),
    },
    optional=frozenset(
        {"model", "weights", "weights_sha256", "onnx", "onnx_sha256", "input_size", "options"}
    ),
)


@functools.cache
def manifest_schema() -> Record:
    """The manifest's schema (built on first use: the choices come from modules that import the
    plan module)."""
    from edgevision.deploy.backends import BACKENDS, PLAN_NAMES
    from edgevision.deploy.calibration import CALIBRATORS
    from edgevision.deploy.plan import FORMAT_NAME, FORMAT_VERSION, PRECISIONS
    from edgevision.deploy.tuning import GRAPH_OPTIMIZATION_LEVELS

    session = Record(  # edgevision.deploy.tuning.Tactic's fields
        {
            "backend": Choice(tuple(BACKENDS)),
            "precision": Choice(PRECISIONS),
            "per_channel": Boolean(),
            "threads": Integer(0, MAX_THREADS),
            "graph_optimization_level": Choice(tuple(GRAPH_OPTIMIZATION_LEVELS)),
        },
        optional=frozenset({"backend", "per_channel"}),
    )
    tactics = Record(
        {"session": session, "passes": Array(SHORT, 0, 64), "fp32_layers": Array(Text(1024), 0, 1024)},
        optional=frozenset({"session", "passes", "fp32_layers"}),
    )
    return Record(
        {
            "format": Choice((FORMAT_NAME,)),
            "format_version": Integer(FORMAT_VERSION, FORMAT_VERSION),
            "edgevision_version": SHORT,
            "backend": Record({"name": Choice(tuple(PLAN_NAMES.values())), "version": SHORT}),
            "precision": Choice(PRECISIONS),
            "calibration_method": Nullable(Choice(tuple(CALIBRATORS))),
            "tactics": tactics,
            "plugins": Array(PLUGIN, 0, 64),
            "inputs": Array(BINDING, 1, 64),
            "outputs": Array(BINDING, 1, 256),
            "source": SOURCE,
            "members": Table(MEMBER_NAME, SHA256, MAX_MEMBERS),
        }
    )


def check_manifest(manifest: Any) -> None:
    """Raise :class:`edgevision.deploy.schema.SchemaError` naming the first value of
    ``manifest`` (the parsed JSON) that the schema refuses."""
    manifest_schema().check(manifest, "")
