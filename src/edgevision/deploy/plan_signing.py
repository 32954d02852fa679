"""Plan signatures: an HMAC-SHA256 of a plan's manifest with a key the user keeps.

A manifest's sha256 values prove only that the members are those the manifest lists: whoever edits
a plan can rewrite the manifest and zip it again, and the plan passes. A key turns that into
authenticity: the plan's ``signature.json`` holds the HMAC of the manifest's bytes (which list
every member's sha256), and only a holder of the key can make one that verifies. The key is any
secret of :data:`MIN_KEY_BYTES` or more, kept in a file, e.g. ``openssl rand -hex 32 > plan.key``;
the file's surrounding whitespace (a trailing newline) is not part of the key.

A reader with a key requires a valid signature; a reader without one checks integrity only and
ignores a signature (it cannot check it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from edgevision.deploy.schema import Choice, Record, SchemaError, Text
from edgevision.errors import InputFileError, PlanSignatureError

SIGNATURE = "signature.json"  # the plan member that holds the signature
ALGORITHM = "HMAC-SHA256"
KEY_ENV = "EDGEVISION_PLAN_KEY"  # names a key file when the command line gives none
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096
# What is signed starts with this, so that the key signs nothing else by accident.
_CONTEXT = b"edgevision-plan manifest\n"
_SCHEMA = Record({"algorithm": Choice((ALGORITHM,)), "manifest_hmac": Text(64, "[0-9a-f]{64}")})


def read_key(path: str | Path) -> bytes:
    """The key in the file ``path``, its surrounding whitespace stripped.

    Raises:
        InputFileError: the file is missing, not a file, unreadable, or its key is shorter than
            :data:`MIN_KEY_BYTES` or longer than :data:`MAX_KEY_BYTES`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such plan key file: {path}")
    try:
        with open(path, "rb") as handle:
            key = handle.read(MAX_KEY_BYTES + 1024).strip()  # a bounded read: it may be anything
    except OSError as error:
        raise InputFileError(f"cannot read the plan key file {path}: {error.strerror}") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InputFileError(
            f"the plan key in {path} must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, e.g. "
            f"`openssl rand -hex 32 > {path.name}`"
        )
    return key


def key_from(path: str | Path | None) -> bytes | None:
    """The key of a command: in the file ``path`` if given, else in the file that the
    :data:`KEY_ENV` environment variable names, else ``None`` (no signature involved)."""
    if path is None:
        path = os.environ.get(KEY_ENV) or None
    return None if path is None else read_key(path)


def signature(manifest: bytes, key: bytes) -> bytes:
    """The ``signature.json`` member that signs the manifest's bytes ``manifest`` with ``key``."""
    record = {"algorithm": ALGORITHM, "manifest_hmac": _hmac(manifest, key)}
    return json.dumps(record, indent=2).encode()


def verify(manifest: bytes, signed: bytes | None, key: bytes, where: str | Path) -> None:
    """Check that ``signed`` (the plan's ``signature.json``, ``None`` if absent) signs ``manifest``
    with ``key``.

    Raises:
        PlanSignatureError: the plan ``where`` is unsigned, its signature is malformed, or it was
            made with another key or for another manifest.
    """
    if signed is None:
        raise PlanSignatureError(f"plan file {where} is not signed, and a plan key was given")
    try:
        record = json.loads(signed)
        _SCHEMA.check(record, SIGNATURE)
    except (ValueError, RecursionError) as error:  # JSON and schema errors are ValueErrors
        detail = error if isinstance(error, SchemaError) else "not JSON"
        raise PlanSignatureError(f"plan file {where} has a malformed {SIGNATURE}: {detail}") from None
    if not hmac.compare_digest(record["manifest_hmac"], _hmac(manifest, key)):
        raise PlanSignatureError(
            f"the signature of plan file {where} does not verify with the given key "
            "(signed with another key, or its manifest was edited)"
        )


def _hmac(manifest: bytes, key: bytes) -> str:
    return hmac.new(key, _CONTEXT + manifest, hashlib.sha256).hexdigest()
