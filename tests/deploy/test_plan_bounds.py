"""Crafted plan files are refused in bounded memory: zip bombs (a member expanding 1000x, a
directory that declares less than a member holds), too many or too large members, encrypted or
exotically compressed members, manifests nested too deeply; and random damage to a plan ends in
a one-line PlanFileError, never another exception."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import tracemalloc
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from plan_files import full_plan, members_of, rewrite

from edgevision.deploy import plan as plan_module
from edgevision.deploy.plan import read_plan, write_plan
from edgevision.errors import ConfigError, PlanFileError

MiB = 1 << 20
BOMB_MIB = 128  # the bomb's model member expands to this; about 130 KB on disk
_DIRECTORY_ENTRY = b"PK\x01\x02"
_FLAGS, _METHOD, _COMPRESSED, _SIZE = 8, 10, 20, 24  # field offsets in a directory entry


def zeros(mib: int) -> Iterator[bytes]:
    for _ in range(mib):
        yield bytes(MiB)


def write_bomb(path: Path, mib: int) -> None:
    """A plan whose model member is ``mib`` MiB of zeros, listed in its manifest with its true
    sha256, streamed into the zip so the test never holds it."""
    members = members_of(write_plan(path, full_plan()))
    digest = hashlib.sha256()
    for chunk in zeros(mib):
        digest.update(chunk)
    manifest = json.loads(members["manifest.json"])
    manifest["members"]["model.onnx"] = digest.hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            if name == "model.onnx":
                with archive.open(name, "w") as handle:
                    for chunk in zeros(mib):
                        handle.write(chunk)
            else:
                archive.writestr(name, data)


def patch_directory(path: Path, member: str, offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of ``member``'s entry in the zip's central directory."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.find(_DIRECTORY_ENTRY)
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == name:
            struct.pack_into(fmt, data, at + offset, value)
            path.write_bytes(bytes(data))
            return
        at = data.find(_DIRECTORY_ENTRY, at + 4)
    raise AssertionError(f"{member} is not in the directory of {path}")


def refused(path: Path, message: str) -> int:
    """Read ``path``, expecting a one-line PlanFileError matching ``message``; return the peak
    bytes Python allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(PlanFileError, match=message) as raised:
            read_plan(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(raised.value)
    return peak


def test_a_member_expanding_a_thousand_times_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bomb.plan"
    write_bomb(path, BOMB_MIB)
    assert path.stat().st_size < BOMB_MIB * MiB // 500
    peak = refused(
        path, rf"member 'model.onnx' of plan file .*bomb.plan expands \d+ bytes to {BOMB_MIB * MiB}"
    )
    assert peak < 4 * MiB, f"reading the bomb allocated {peak / MiB:.0f} MiB"


def test_a_directory_declaring_less_than_the_member_holds_stops_at_the_declared_size(tmp_path: Path) -> None:
    # 64 MiB of zeros declared as 512 KiB (so within the ratio): the reader stops there, and the
    # member then fails its CRC. (zipfile's read() of a whole member decompresses it all first.)
    path = tmp_path / "liar.plan"
    write_bomb(path, 64)
    patch_directory(path, "model.onnx", _SIZE, "<L", 512 * 1024)
    peak = refused(path, r"^truncated or corrupt plan file: .*liar.plan$")
    assert peak < 4 * MiB, f"reading the member allocated {peak / MiB:.0f} MiB"


def test_a_member_larger_than_its_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_plan(tmp_path / "big.plan", full_plan())
    monkeypatch.setattr(plan_module, "MAX_MODEL_BYTES", 64)  # the relu model is about 150 bytes
    refused(path, r"member 'model.onnx' of plan file .*big.plan is \d+ bytes; its bound is 64$")
    with pytest.raises(ConfigError, match=r"plan member\(s\) \['model.onnx'\] exceed their size bound"):
        write_plan(tmp_path / "never.plan", full_plan())
    assert not (tmp_path / "never.plan").exists()


def test_a_manifest_larger_than_its_bound_is_refused(tmp_path: Path) -> None:
    def padded(members: dict[str, bytes]) -> dict[str, bytes]:
        manifest = json.loads(members["manifest.json"])
        manifest["padding"] = " " * (2 * MiB)
        return {**members, "manifest.json": json.dumps(manifest).encode()}

    path = write_plan(tmp_path / "padded.plan", full_plan())
    rewrite(path, padded)
    refused(path, r"member 'manifest.json' of plan file .* is \d+ bytes; its bound is 1048576$")


def test_too_many_members_are_refused_before_the_directory_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "many.plan"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(20_000):
            archive.writestr(f"{index}", b"")
    # zipfile would build 20,000 ZipInfo objects (about 10 MB) for this 1.5 MB file
    peak = refused(path, r"^plan file .*many.plan has 20000 members; a plan has at most 32$")
    assert peak < MiB // 2, f"counting the members allocated {peak / MiB:.1f} MiB"


def test_a_plan_of_more_than_32_members_is_neither_written_nor_read(tmp_path: Path) -> None:
    extras = {f"extra_{index}.json": b"{}" for index in range(31)}  # + model, calibration: 33
    with pytest.raises(ConfigError, match=r"^members: expected an object of at most 32 fields"):
        write_plan(tmp_path / "extras.plan", replace(full_plan(), extras=extras))
    path = write_plan(tmp_path / "extras.plan", full_plan())
    rewrite(path, lambda members: {**members, **extras})
    refused(path, r"has 35 members; a plan has at most 32$")


def test_two_members_of_one_name_are_refused(tmp_path: Path) -> None:
    path = write_plan(tmp_path / "twice.plan", full_plan())
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("model.onnx", b"another model")
    refused(path, r"^plan file .*twice.plan holds two members of the same name$")


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (_FLAGS, 0x1, r"member 'model.onnx' of plan file .* is encrypted; plans are not$"),
        (
            _METHOD,
            zipfile.ZIP_BZIP2,
            r"member 'model.onnx' .* is compressed with method 12; plans use deflate$",
        ),
        (_METHOD, 99, r"member 'model.onnx' .* is compressed with method 99; plans use deflate$"),
    ],
    ids=["encrypted", "bzip2", "aes"],
)
def test_an_encrypted_or_exotically_compressed_member_is_refused(
    tmp_path: Path, offset: int, value: int, message: str
) -> None:
    path = write_plan(tmp_path / "odd.plan", full_plan())
    patch_directory(path, "model.onnx", offset, "<H", value)
    refused(path, message)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"[" * 100_000, r"manifest.json of .* is not JSON: nested too deeply$"),
        (b'{"format": "edgevision-plan", "format_version": ' + b"9" * 5000 + b"}", r"is not JSON: Exceeds"),
    ],
    ids=["deep", "long-number"],
)
def test_a_manifest_that_breaks_the_json_parser_is_one_line(
    tmp_path: Path, manifest: bytes, message: str
) -> None:
    path = write_plan(tmp_path / "json.plan", full_plan())
    rewrite(path, lambda members: {**members, "manifest.json": manifest})
    refused(path, message)


def damaged(data: bytes, rng: random.Random) -> bytes:
    """``data`` with 1 to 4 random bytes set to random values."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def test_random_damage_is_refused_in_one_line_or_changes_nothing(tmp_path: Path) -> None:
    plan = full_plan()
    original = write_plan(tmp_path / "good.plan", plan).read_bytes()
    rng = random.Random(0)
    path = tmp_path / "damaged.plan"
    refusals = 0
    for _ in range(300):
        path.write_bytes(damaged(original, rng))
        try:
            # bytes of the zip headers that nothing reads (dates, versions) may change harmlessly
            assert read_plan(path) == plan
        except PlanFileError as error:  # anything else fails the test with its traceback
            assert "\n" not in str(error)
            refusals += 1
    assert refusals > 200
