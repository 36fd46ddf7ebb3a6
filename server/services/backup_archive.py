"""A graph export as one tar stream, and back.

:func:`pack` writes the files of an export directory as a tar in a fixed
order with fixed metadata (names sorted, times, owners and modes zeroed or
fixed), so the same export always gives the same bytes and the same SHA-256.
It writes in stream mode (``w|``): the tar is never seekable nor held in
memory; a few blocks at a time go to the writer (a
:class:`~graphgate.server.services.backup_format.Sealer`).

Security: :func:`unpack` runs only on a tar whose frames and SHA-256 were
verified, but it still accepts nothing an export does not contain: regular
files and directories only, relative names without ``..``, at most
:data:`MAX_MEMBERS` entries, extracted with the standard library's ``data``
filter (no links, devices, absolute paths or permission bits) into a new
private directory.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import IO, cast

from graphgate.server.services.backup_format import Writable

#: More entries than any export has (a few files per table); bounds header memory.
MAX_MEMBERS = 100_000


class ArchiveRefused(Exception):
    """The tar holds something an export never does."""


def _entries(directory: Path) -> list[tuple[str, Path]]:
    entries: list[tuple[str, Path]] = []
    for path in directory.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ArchiveRefused(f"unexpected entry in export: {path.name!r}")
        entries.append((path.relative_to(directory).as_posix(), path))
    return sorted(entries)


def pack(directory: Path, out: Writable) -> None:
    """Write ``directory``'s files to ``out`` as a deterministic tar (PAX format).

    Raises :class:`ArchiveRefused` for a symlink or special file, ``OSError``.
    """
    # tarfile only calls write() on a stream-mode file object.
    with tarfile.open(
        fileobj=cast(IO[bytes], out), mode="w|", format=tarfile.PAX_FORMAT
    ) as archive:
        for name, path in _entries(directory):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                archive.addfile(info)
                continue
            info.mode = 0o600
            with path.open("rb") as handle:
                info.size = path.stat().st_size
                archive.addfile(info, handle)


def _check(member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not name.parts:
        raise ArchiveRefused(f"unsafe name {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise ArchiveRefused(f"not a file or directory: {member.name!r}")


def unpack(archive_path: Path, target: Path) -> None:
    """Extract the tar at ``archive_path`` into the new directory ``target`` (mode 0700).

    Raises :class:`ArchiveRefused` for anything but plain files and
    directories under safe names, ``tarfile.TarError``, ``OSError``.
    """
    target.mkdir(mode=0o700)
    with tarfile.open(archive_path, mode="r:") as archive:
        members: list[tarfile.TarInfo] = []
        for member in archive:
            if len(members) >= MAX_MEMBERS:
                raise ArchiveRefused("too many entries")
            _check(member)
            members.append(member)
        archive.extractall(target, members=members, filter="data")
