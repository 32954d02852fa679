"""The plan file: an optimised ONNX model with everything needed to run it, in one versioned zip.

Members:

- ``manifest.json``: the format name and version, the edgevision and backend versions that built
  the plan, its precision, calibration method, chosen tactics, plugins, input and output bindings,
  and the sha256 of every other member;
- ``model.onnx``: the optimised model;
- ``calibration.json`` (optional): the calibration cache of an int8 plan;
- any other files (optional), e.g. a timing cache.

:func:`read_plan` refuses a file that is not a zip, has no manifest, is of another format version,
or whose members differ from those the manifest lists or from their sha256.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

import edgevision
from edgevision.data.io import atomic_write
from edgevision.errors import ConfigError, PlanFileError, PlanVersionError

FORMAT_NAME = "edgevision-plan"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL = "model.onnx"
CALIBRATION = "calibration.json"
PRECISIONS = ("fp32", "fp16", "int8")
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: the same plan gives the same bytes


@dataclass(frozen=True)
class Binding:
    """A named input or output of the plan's model.

    Attributes:
        name: the tensor name in the model.
        dtype: numpy dtype name, e.g. ``"float32"``.
        shape: dimensions, symbolic ones as strings, e.g. ``(1, 3, "height", "width")``.
        preprocessing: what the caller does to an image before binding it, as JSON values, e.g.
            ``{"mean": [104.0, 117.0, 123.0], "channel_order": "BGR", "scale": 1.0}``.
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    preprocessing: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plugin:
    """A custom operator the model needs, as its ONNX domain, op type and version."""

    domain: str
    op_type: str
    version: int


@dataclass(frozen=True)
class Plan:
    """A built deployment plan: what :func:`write_plan` writes and :func:`read_plan` returns.

    Attributes:
        model: the serialized optimised ONNX model.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        inputs: the model's input bindings.
        outputs: the model's output bindings.
        calibration_method: how int8 ranges were calibrated (e.g. ``"minmax"``), or ``None``.
        calibration: the calibration cache (``calibration.json``'s bytes), or ``None``.
        tactics: the choices the builder made, as JSON values (e.g. ``{"conv1": "winograd"}``).
        plugins: custom operators the model needs.
        extras: other members by file name, e.g. ``{"timing_cache.json": b"..."}``.
        source: where the model came from, as JSON values: ``{"model": registry name, "weights":
            ..., "weights_sha256": ..., "input_size": [H, W]}`` for a registry model (a detector
            is rebuilt around the plan from it: anchors, decoding), ``{"onnx": ..., "onnx_sha256":
            ...}`` for a file.
        backend: the runtime that runs the model.
        backend_version: its version when the plan was built.
        edgevision_version: edgevision's version when the plan was built.

    Raises:
        ConfigError: ``precision`` is not one of :data:`PRECISIONS`, or an extra member takes the
            name of a standard one.
    """

    model: bytes
    precision: str
    inputs: tuple[Binding, ...]
    outputs: tuple[Binding, ...]
    calibration_method: str | None = None
    calibration: bytes | None = None
    tactics: Mapping[str, Any] = field(default_factory=dict)
    plugins: tuple[Plugin, ...] = ()
    extras: Mapping[str, bytes] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    backend: str = "onnxruntime"
    backend_version: str = ort.__version__
    edgevision_version: str = field(default_factory=lambda: edgevision.__version__)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        reserved = {MANIFEST, MODEL, CALIBRATION} & set(self.extras)
        if reserved:
            raise ConfigError(f"extra plan members cannot be named {sorted(reserved)}")

    def members(self) -> dict[str, bytes]:
        """Every member but the manifest, by file name."""
        calibration = {} if self.calibration is None else {CALIBRATION: self.calibration}
        return {MODEL: self.model, **calibration, **self.extras}


def write_plan(path: str | Path, plan: Plan) -> Path:
    """Write ``plan`` to the zip file ``path`` (atomically; its folder is created) and return the
    path."""
    members = plan.members()
    manifest = json.dumps(_manifest(plan, members), indent=2).encode()
    with atomic_write(path) as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, data in {MANIFEST: manifest, **members}.items():
            info = zipfile.ZipInfo(name, _ZIP_DATE)
            info.external_attr = 0o644 << 16  # rw-r--r-- when unzipped
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return Path(path)


def read_plan(path: str | Path) -> Plan:
    """Read and check a plan file written by :func:`write_plan`.

    Raises:
        PlanFileError: ``path`` is missing, not a zip, truncated or corrupt, has no or a malformed
            manifest, or has members missing, unlisted, or whose sha256 differs from the
            manifest's (the message names them).
        PlanVersionError: the file is of a format version this edgevision does not read.
    """
    path = Path(path)
    if not path.exists():
        raise PlanFileError(f"no such plan file: {path}")
    if not path.is_file():
        raise PlanFileError(f"not a file: {path}")
    members = _read_members(path)
    if MANIFEST not in members:
        raise PlanFileError(f"not a plan file (no {MANIFEST}): {path}")
    try:
        manifest = json.loads(members.pop(MANIFEST))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PlanFileError(f"{MANIFEST} of {path} is not JSON: {error}") from None
    _check_format(manifest, path)
    _check_members(members, manifest.get("members"), path)
    try:
        return _plan(manifest, members)
    except (KeyError, TypeError, ValueError) as error:  # ConfigError is a ValueError
        raise PlanFileError(f"malformed {MANIFEST} in {path}: {type(error).__name__} {error}") from None


def _manifest(plan: Plan, members: Mapping[str, bytes]) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "edgevision_version": plan.edgevision_version,
        "backend": {"name": plan.backend, "version": plan.backend_version},
        "precision": plan.precision,
        "calibration_method": plan.calibration_method,
        "tactics": plan.tactics,
        "plugins": [asdict(plugin) for plugin in plan.plugins],
        "inputs": [asdict(binding) for binding in plan.inputs],
        "outputs": [asdict(binding) for binding in plan.outputs],
        "source": plan.source,
        "members": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }


def _plan(manifest: dict[str, Any], members: Mapping[str, bytes]) -> Plan:
    """The plan that ``manifest`` describes, from checked ``members``."""
    return Plan(
        model=members[MODEL],
        precision=manifest["precision"],
        inputs=tuple(_binding(entry) for entry in manifest["inputs"]),
        outputs=tuple(_binding(entry) for entry in manifest["outputs"]),
        calibration_method=manifest["calibration_method"],
        calibration=members.get(CALIBRATION),
        tactics=manifest["tactics"],
        plugins=tuple(Plugin(**entry) for entry in manifest["plugins"]),
        extras={name: data for name, data in members.items() if name not in (MODEL, CALIBRATION)},
        source=manifest["source"],
        backend=manifest["backend"]["name"],
        backend_version=manifest["backend"]["version"],
        edgevision_version=manifest["edgevision_version"],
    )


def _binding(entry: dict[str, Any]) -> Binding:
    return Binding(entry["name"], entry["dtype"], tuple(entry["shape"]), entry["preprocessing"])


def _read_members(path: Path) -> dict[str, bytes]:
    """Every member of the zip file ``path`` by name."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, zlib.error, EOFError):
        with open(path, "rb") as handle:
            is_zip = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
        if is_zip:
            raise PlanFileError(f"truncated or corrupt plan file: {path}") from None
        raise PlanFileError(f"not a plan file: {path}") from None


def _check_format(manifest: Any, path: Path) -> None:
    """The manifest names this format, in the version this edgevision reads."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise PlanFileError(f"not a plan file ({MANIFEST} does not name the {FORMAT_NAME!r} format): {path}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise PlanVersionError(
            f"{path} is a plan of format version {version}; edgevision {edgevision.__version__} reads "
            f"version {FORMAT_VERSION}"
        )


def _check_members(members: Mapping[str, bytes], digests: Any, path: Path) -> None:
    """``members`` are those the manifest lists, including the model, with the listed sha256."""
    if not isinstance(digests, dict) or MODEL not in digests:
        raise PlanFileError(f"malformed {MANIFEST} in {path}: its member list lacks {MODEL}")
    missing, unlisted = sorted(set(digests) - set(members)), sorted(set(members) - set(digests))
    if missing:
        raise PlanFileError(f"plan file {path} lacks the member(s) {missing} its manifest lists")
    if unlisted:
        raise PlanFileError(f"plan file {path} has member(s) {unlisted} its manifest does not list")
    for name, data in members.items():
        if hashlib.sha256(data).hexdigest() != digests[name]:
            raise PlanFileError(
                f"member {name!r} of plan file {path} does not match its sha256 in the manifest "
                "(the file was edited or is corrupt)"
            )
