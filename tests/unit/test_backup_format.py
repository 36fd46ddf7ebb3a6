"""The sealed backup format and the export tar, without any store (C11)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, MultiFernet

from graphgate.server.services.backup_archive import ArchiveRefused, pack, unpack
from graphgate.server.services.backup_format import (
    MAGIC,
    MAX_CHUNK_BYTES,
    BrokenSeal,
    Sealer,
    binding,
    max_token_bytes,
    unseal,
)

OLD = Fernet(Fernet.generate_key())
KEY = MultiFernet([OLD])
OWNER = binding(uuid.uuid4(), uuid.uuid4())


def _seal(data: bytes, *, chunk: int = 64, fernet: MultiFernet = KEY) -> bytes:
    out = io.BytesIO()
    sealer = Sealer(out, fernet, OWNER, chunk_bytes=chunk)
    for start in range(0, len(data), 50):  # writes that straddle chunk boundaries
        sealer.write(data[start : start + 50])
    sealed = sealer.finish()
    assert sealed.size_bytes == len(out.getvalue())
    assert sealed.sha256 == hashlib.sha256(data).hexdigest()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000])
def test_c11_round_trip_under_any_key(size: int) -> None:
    data = os.urandom(size)
    newer = Fernet(Fernet.generate_key())
    body = _seal(data)
    out = io.BytesIO()
    digest = unseal(io.BytesIO(body), out, MultiFernet([newer, OLD]), OWNER)
    assert out.getvalue() == data
    assert digest == hashlib.sha256(data).hexdigest()


def test_c11_every_single_bit_change_is_refused() -> None:
    body = _seal(os.urandom(150))
    for index in range(len(body)):
        for bit in (0x01, 0x20, 0x80):
            changed = bytearray(body)
            changed[index] ^= bit
            with pytest.raises(BrokenSeal):
                unseal(io.BytesIO(bytes(changed)), io.BytesIO(), KEY, OWNER)


def test_c11_cut_extended_foreign_or_unkeyed_objects_are_refused() -> None:
    body = _seal(os.urandom(300))
    for broken in (body[:-1], body[: len(body) // 2], MAGIC, b"", body + b"\x00"):
        with pytest.raises(BrokenSeal):
            unseal(io.BytesIO(broken), io.BytesIO(), KEY, OWNER)
    with pytest.raises(BrokenSeal):
        unseal(io.BytesIO(body), io.BytesIO(), KEY, binding(uuid.uuid4(), uuid.uuid4()))
    with pytest.raises(BrokenSeal):
        unseal(io.BytesIO(body), io.BytesIO(), MultiFernet([Fernet(Fernet.generate_key())]), OWNER)


def test_c11_an_oversized_frame_is_refused_before_it_is_read() -> None:
    class NoBigReads(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            assert size is not None
            assert 0 <= size <= max_token_bytes(MAX_CHUNK_BYTES)
            return super().read(size)

    huge = (2**32 - 1).to_bytes(4, "big")
    with pytest.raises(BrokenSeal, match="length"):
        unseal(NoBigReads(MAGIC + huge), io.BytesIO(), KEY, OWNER)


def test_c11_token_bound_is_exact() -> None:
    fernet = Fernet(Fernet.generate_key())
    for chunk in (0, 1, 15, 16, 1000):
        assert len(fernet.encrypt(b"\0" * (41 + chunk))) == max_token_bytes(chunk)


def _export(root: Path) -> Path:
    export = root / "export"
    (export / "sub").mkdir(parents=True)
    (export / "schema.cypher").write_text("CREATE NODE TABLE T(id INT64 PRIMARY KEY);")
    (export / "nodes_T.parquet").write_bytes(os.urandom(5000))
    (export / "sub" / "x").write_bytes(b"x")
    return export


def test_c11_pack_is_deterministic_and_unpacks_to_the_same_files(tmp_path: Path) -> None:
    export = _export(tmp_path)
    first, second = io.BytesIO(), io.BytesIO()
    pack(export, first)
    os.utime(export / "schema.cypher", (0, 12345))
    pack(export, second)
    assert first.getvalue() == second.getvalue()
    archive = tmp_path / "a.tar"
    archive.write_bytes(first.getvalue())
    unpack(archive, tmp_path / "out")
    for path in export.rglob("*"):
        twin = tmp_path / "out" / path.relative_to(export)
        assert twin.is_dir() if path.is_dir() else twin.read_bytes() == path.read_bytes()


def test_c11_pack_refuses_links(tmp_path: Path) -> None:
    export = _export(tmp_path)
    (export / "link").symlink_to("/etc/passwd")
    with pytest.raises(ArchiveRefused):
        pack(export, io.BytesIO())


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../escape", tarfile.REGTYPE), ("/abs", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)],
)
def test_c11_unpack_refuses_what_an_export_never_holds(
    tmp_path: Path, name: str, kind: bytes
) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as handle:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
        handle.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveRefused):
        unpack(archive, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())
