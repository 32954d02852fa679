"""The plan file: an optimised ONNX model with everything needed to run it, in one versioned zip.

Members:

- ``manifest.json``: the format name and version, the edgevision and backend versions that built
  the plan, its precision, calibration method, chosen tactics, plugins, input and output bindings,
  and the sha256 of every other member;
- ``model.onnx``: the optimised model;
- ``calibration.json`` (optional): the calibration cache of an int8 plan;
- ``signature.json`` (optional): an HMAC-SHA256 of the manifest with the user's key
  (:mod:`edgevision.deploy.plan_signing`);
- any other files (optional), e.g. a timing cache.

:func:`read_plan` refuses a file that is not a zip, has no manifest, is of another format version,
has a manifest value outside its schema (:mod:`edgevision.deploy.plan_schema`), or whose members
differ from those the manifest lists or from their sha256.

The sha256 values are integrity only: they catch a corrupt or carelessly edited file, not an edit
made on purpose, since whoever edits a member can rewrite the manifest and zip the plan again. For
plans that travel, sign them with a key (``write_plan(..., key=)``) and read them with it
(``read_plan(..., key=)``): a plan read with a key must carry a signature made with that key.

A plan comes from elsewhere, so it is read in bounded memory: before any member is read, the zip's
directory must list at most :data:`MAX_MEMBERS` members, each no larger than its bound (the model
:data:`MAX_MODEL_BYTES`, the manifest :data:`MAX_MANIFEST_BYTES`, any other
:data:`MAX_MEMBER_BYTES`) and expanding at most :data:`MAX_RATIO` times; members are then read in
chunks of :data:`CHUNK_BYTES`, no further than the size the directory declares, their sha256
computed as they stream.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

import edgevision
from edgevision.data.io import atomic_write
from edgevision.deploy.plan_schema import MAX_MEMBERS, check_manifest
from edgevision.deploy.plan_signing import SIGNATURE, signature, verify
from edgevision.deploy.schema import SchemaError
from edgevision.errors import ConfigError, PlanFileError, PlanVersionError

FORMAT_NAME = "edgevision-plan"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL = "model.onnx"
CALIBRATION = "calibration.json"
PRECISIONS = ("fp32", "fp16", "int8")
# Bounds on what a plan file may hold, checked in its zip directory before anything is read
# (and MAX_MEMBERS, shared with the manifest's schema).
MAX_MODEL_BYTES = 1 << 30  # generous: the largest registered model, R-FCN, is about 120 MB in fp32
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few KB
MAX_MEMBER_BYTES = 64 << 20  # any other member: calibration cache, signature, timing cache, ...
# Deflate shrinks an ONNX model's weights about 1.1x (int8: about 1.5x), JSON about 5x; a member
# expanding more than this is a zip bomb. Members up to RATIO_FLOOR are bounded by size alone.
MAX_RATIO = 100
RATIO_FLOOR = 1 << 20
CHUNK_BYTES = 1 << 20
_ZIP_MAGIC = b"PK\x03\x04"
_END_RECORD = struct.Struct("<4s4H2LH")  # zip's end of central directory record
_END_MAGIC = b"PK\x05\x06"
_END_SEARCH = _END_RECORD.size + 0xFFFF  # the record ends the file, after a comment of < 64 KiB
_ENCRYPTED = 0x1  # general purpose flag bit
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
        reserved = {MANIFEST, MODEL, CALIBRATION, SIGNATURE} & set(self.extras)
        if reserved:
            raise ConfigError(f"extra plan members cannot be named {sorted(reserved)}")

    def members(self) -> dict[str, bytes]:
        """Every member but the manifest, by file name."""
        calibration = {} if self.calibration is None else {CALIBRATION: self.calibration}
        return {MODEL: self.model, **calibration, **self.extras}


def write_plan(path: str | Path, plan: Plan, *, key: bytes | None = None) -> Path:
    """Write ``plan`` to the zip file ``path`` (atomically; its folder is created) and return the
    path; with ``key``, sign it (:mod:`edgevision.deploy.plan_signing`).

    Raises:
        ConfigError: a value of the plan is outside the manifest's schema (the message names it),
            or a member is larger than its bound; nothing is written.
    """
    members = plan.members()
    manifest = _manifest(plan, members)
    check_manifest(manifest)
    too_large = [name for name, data in members.items() if len(data) > _bound(name)]
    if too_large:
        raise ConfigError(f"plan member(s) {too_large} exceed their size bound; see edgevision.deploy.plan")
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    signed = {} if key is None else {SIGNATURE: signature(manifest_bytes, key)}
    with atomic_write(path) as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, data in {MANIFEST: manifest_bytes, **members, **signed}.items():
            info = zipfile.ZipInfo(name, _ZIP_DATE)
            info.external_attr = 0o644 << 16  # rw-r--r-- when unzipped
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return Path(path)


def read_plan(path: str | Path, *, key: bytes | None = None) -> Plan:
    """Read and check a plan file written by :func:`write_plan`, in bounded memory (see the
    module docstring); with ``key``, require a signature made with it.

    Raises:
        PlanFileError: ``path`` is missing, not a zip, truncated or corrupt, holds more or larger
            members than the bounds or a compressed bomb, has no or a malformed manifest (the
            message names the field), or has members missing, unlisted, or whose sha256 differs
            from the manifest's (the message names them).
        PlanSignatureError: ``key`` is given and the plan is unsigned or its signature does not
            verify with it.
        PlanVersionError: the file is of a format version this edgevision does not read.
    """
    path = Path(path)
    if not path.exists():
        raise PlanFileError(f"no such plan file: {path}")
    if not path.is_file():
        raise PlanFileError(f"not a file: {path}")
    try:
        _check_member_count(path)
        with zipfile.ZipFile(path) as archive:
            entries = _directory(archive, path)
            if MANIFEST not in entries:
                raise PlanFileError(f"not a plan file (no {MANIFEST}): {path}")
            manifest_bytes, _ = _read_member(archive, entries[MANIFEST])
            if key is not None:
                signed = _read_member(archive, entries[SIGNATURE])[0] if SIGNATURE in entries else None
                verify(manifest_bytes, signed, key, path)
            manifest = _parse_manifest(manifest_bytes, path)
            members = _read_listed_members(archive, entries, manifest["members"], path)
    # what zipfile raises for a damaged file (NotImplementedError: a bad "version needed" field)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, UnicodeDecodeError):
        with open(path, "rb") as handle:
            is_zip = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
        if is_zip:
            raise PlanFileError(f"truncated or corrupt plan file: {path}") from None
        raise PlanFileError(f"not a plan file: {path}") from None
    except OSError as error:
        raise PlanFileError(f"cannot read plan file {path}: {error.strerror or error}") from None
    return _plan(manifest, members)


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


def _bound(name: str) -> int:
    """The largest size in bytes of the member ``name``."""
    return {MODEL: MAX_MODEL_BYTES, MANIFEST: MAX_MANIFEST_BYTES}.get(name, MAX_MEMBER_BYTES)


def _check_member_count(path: Path) -> None:
    """Refuse a zip whose end record counts more than :data:`MAX_MEMBERS` members, before
    :mod:`zipfile` builds an object for each; a file without the record is left to it."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - _END_SEARCH))
        tail = handle.read()
    at = tail.rfind(_END_MAGIC)
    if at < 0 or at + _END_RECORD.size > len(tail):
        return
    count = _END_RECORD.unpack_from(tail, at)[4]  # entries in the whole directory
    if count > MAX_MEMBERS:  # zip64's 0xFFFF marker too: no plan needs zip64
        raise PlanFileError(f"plan file {path} has {count} members; a plan has at most {MAX_MEMBERS}")


def _directory(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The members by name, each checked against its bounds (see the module docstring) from what
    the zip directory declares, before any is read."""
    infos = archive.infolist()
    entries = {info.filename: info for info in infos}
    if len(infos) > MAX_MEMBERS:
        raise PlanFileError(f"plan file {path} has {len(infos)} members; a plan has at most {MAX_MEMBERS}")
    if len(entries) < len(infos):
        raise PlanFileError(f"plan file {path} holds two members of the same name")
    for name, info in entries.items():
        where = f"member {name!r} of plan file {path}"
        if info.flag_bits & _ENCRYPTED:
            raise PlanFileError(f"{where} is encrypted; plans are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PlanFileError(f"{where} is compressed with method {info.compress_type}; plans use deflate")
        if info.file_size > _bound(name):
            raise PlanFileError(f"{where} is {info.file_size} bytes; its bound is {_bound(name)}")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size:
            raise PlanFileError(
                f"{where} expands {info.compress_size} bytes to {info.file_size}, more than "
                f"{MAX_RATIO}x: a compressed bomb, not a plan"
            )
    return entries


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[bytes, str]:
    """The bytes of the member ``info`` and their sha256, read in chunks of :data:`CHUNK_BYTES`
    up to the size the directory declares (a member that holds more fails its CRC:
    :class:`zipfile.BadZipFile`, as does one that holds less)."""
    digest, chunks, left = hashlib.sha256(), [], info.file_size
    with archive.open(info) as handle:
        while left:
            chunk = handle.read(min(CHUNK_BYTES, left))
            if not chunk:
                raise zipfile.BadZipFile(f"{info.filename} ends before its declared size")
            digest.update(chunk)
            chunks.append(chunk)
            left -= len(chunk)
    return b"".join(chunks), digest.hexdigest()


def _parse_manifest(data: bytes, path: Path) -> dict[str, Any]:
    """The manifest in ``data``, checked: this format and version, every value in its schema."""
    try:
        manifest = json.loads(data)
    # ValueError: JSON's errors, and a number of more than 4300 digits (Python's int limit)
    except (ValueError, RecursionError) as error:
        detail = "nested too deeply" if isinstance(error, RecursionError) else error
        raise PlanFileError(f"{MANIFEST} of {path} is not JSON: {detail}") from None
    _check_format(manifest, path)
    try:
        check_manifest(manifest)
    except SchemaError as error:
        raise PlanFileError(f"malformed {MANIFEST} in {path}: {error}") from None
    return manifest


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


def _read_listed_members(
    archive: zipfile.ZipFile, entries: Mapping[str, zipfile.ZipInfo], digests: Mapping[str, str], path: Path
) -> dict[str, bytes]:
    """The members the manifest lists (the model among them), each read and checked against its
    sha256 there; a member missing or unlisted is refused before any is read."""
    if MODEL not in digests:
        raise PlanFileError(f"malformed {MANIFEST} in {path}: its member list lacks {MODEL}")
    present = set(entries) - {MANIFEST, SIGNATURE}
    missing, unlisted = sorted(set(digests) - present), sorted(present - set(digests))
    if missing:
        raise PlanFileError(f"plan file {path} lacks the member(s) {missing} its manifest lists")
    if unlisted:
        raise PlanFileError(f"plan file {path} has member(s) {unlisted} its manifest does not list")
    members = {}
    for name in digests:
        data, digest = _read_member(archive, entries[name])
        if digest != digests[name]:
            raise PlanFileError(
                f"member {name!r} of plan file {path} does not match its sha256 in the manifest "
                "(the file was edited or is corrupt)"
            )
        members[name] = data
    return members
