"""Plan signatures: a plan signed with a key verifies with it, and with any other key, unsigned,
tampered or re-zipped with a new model, it is refused in one line; without a key a plan is
checked for integrity only (which a re-zipped plan passes: the reason for signing)."""

from __future__ import annotations

import hashlib
import hmac
import json
import zipfile
from pathlib import Path

import pytest
from plan_files import full_plan, members_of, relu_model, rewrite, with_digests

from edgevision.deploy.plan import read_plan, write_plan
from edgevision.deploy.plan_signing import KEY_ENV, key_from, read_key
from edgevision.deploy.runtime import load_engine
from edgevision.errors import InputFileError, PlanSignatureError

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"


def signed(tmp_path: Path, key: bytes = KEY) -> Path:
    return write_plan(tmp_path / "signed.plan", full_plan(), key=key)


def refused(path: Path, key: bytes, message: str) -> None:
    with pytest.raises(PlanSignatureError, match=message) as raised:
        read_plan(path, key=key)
    assert "\n" not in str(raised.value)


def test_a_signed_plan_round_trips_and_its_signature_is_the_hmac_of_its_manifest(tmp_path: Path) -> None:
    path = signed(tmp_path)
    assert read_plan(path, key=KEY) == full_plan()
    members = members_of(path)
    record = json.loads(members["signature.json"])
    expected = hmac.new(KEY, b"edgevision-plan manifest\n" + members["manifest.json"], hashlib.sha256)
    assert record == {"algorithm": "HMAC-SHA256", "manifest_hmac": expected.hexdigest()}
    assert write_plan(tmp_path / "again.plan", full_plan(), key=KEY).read_bytes() == path.read_bytes()
    assert load_engine(path, key=KEY).plan == full_plan()


def test_a_signed_plan_read_without_a_key_is_checked_for_integrity_only(tmp_path: Path) -> None:
    assert read_plan(signed(tmp_path)) == full_plan()


def test_a_wrong_key_is_refused(tmp_path: Path) -> None:
    refused(
        signed(tmp_path),
        OTHER_KEY,
        r"^the signature of plan file .*signed.plan does not verify with the given key",
    )


def test_an_unsigned_plan_read_with_a_key_is_refused(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "unsigned.plan", full_plan())
    refused(path, KEY, r"^plan file .*unsigned.plan is not signed, and a plan key was given$")


def test_a_tampered_manifest_is_refused(tmp_path: Path) -> None:
    def more_threads(members: dict[str, bytes]) -> dict[str, bytes]:
        manifest = json.loads(members["manifest.json"])
        manifest["tactics"]["session"]["threads"] = 2
        return {**members, "manifest.json": json.dumps(manifest, indent=2).encode()}

    path = signed(tmp_path)
    rewrite(path, more_threads)
    refused(
        path,
        KEY,
        r"does not verify with the given key \(signed with another key, or its manifest was edited\)$",
    )


def test_a_re_zipped_plan_with_another_model_passes_integrity_but_not_the_signature(tmp_path: Path) -> None:
    path = signed(tmp_path)
    rewrite(path, lambda members: with_digests({**members, "model.onnx": relu_model("evil")}))
    assert read_plan(path).model == relu_model("evil"), "integrity alone cannot catch this"
    refused(path, KEY, r"does not verify with the given key")


def test_the_signature_survives_a_re_zip_that_keeps_the_content(tmp_path: Path) -> None:
    path = signed(tmp_path)
    members = members_of(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # other bytes, same members
        for name in reversed(list(members)):
            archive.writestr(name, members[name])
    assert read_plan(path, key=KEY) == full_plan()


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (b"not json", r"has a malformed signature.json: not JSON$"),
        (
            b'{"algorithm": "MD5", "manifest_hmac": "00"}',
            r"signature.json.algorithm: expected one of HMAC-SHA256",
        ),
    ],
)
def test_a_malformed_signature_is_refused(tmp_path: Path, signature: bytes, message: str) -> None:
    path = signed(tmp_path)
    rewrite(path, lambda members: {**members, "signature.json": signature})
    refused(path, KEY, message)


def test_key_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "plan.key"
    key_file.write_bytes(KEY + b"\n")  # as `openssl rand -hex 16 > plan.key` writes it
    assert read_key(key_file) == KEY
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert key_from(None) is None
    monkeypatch.setenv(KEY_ENV, str(key_file))
    assert key_from(None) == KEY
    assert key_from(key_file) == KEY
    short = tmp_path / "short.key"
    short.write_bytes(b"secret\n")
    with pytest.raises(InputFileError, match=r"^the plan key in .*short.key must be 16 to 4096 bytes"):
        key_from(short)
    with pytest.raises(InputFileError, match=r"^no such plan key file: .*absent.key$"):
        key_from(tmp_path / "absent.key")
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "absent.key"))
    with pytest.raises(InputFileError, match=r"^no such plan key file: .*absent.key$"):
        key_from(None)
