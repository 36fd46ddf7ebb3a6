"""The blocking steps of backups, run in threads: seal, open, re-seal, work directories.

Each works file to file with memory bounded by one frame
(:mod:`.backup_format`); the callers own the paths and remove them.

Security: work directories are created with mode 0700 (``mkdtemp``) under a
0700 parent, because they hold plaintext exports between steps.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from cryptography.fernet import MultiFernet

from graphgate.server.services.backup_archive import pack
from graphgate.server.services.backup_format import Sealed, Sealer, unseal

#: Names of work directories, so leftovers of a crash can be recognised.
WORKSPACE_PREFIX = "op-"


def seal_export(
    export: Path, target: Path, fernet: MultiFernet, owner: bytes, chunk: int
) -> Sealed:
    """Tar ``export`` and seal it into the new file ``target``; returns size and digest."""
    with target.open("xb") as handle:
        sealer = Sealer(handle, fernet, owner, chunk_bytes=chunk)
        pack(export, sealer)
        return sealer.finish()


def open_sealed(sealed: Path, target: Path, fernet: MultiFernet, owner: bytes) -> str:
    """Open every frame of ``sealed`` into the new file ``target``; returns the digest.

    Raises :class:`~.backup_format.BrokenSeal`; ``target`` is then partial.
    """
    with sealed.open("rb") as source, target.open("xb") as out:
        return unseal(source, out, fernet, owner)


def reseal(
    sealed: Path, target: Path, fernet: MultiFernet, owner: bytes, chunk: int
) -> tuple[str, Sealed]:
    """Re-seal ``sealed`` into ``target`` under the newest key: ``MultiFernet.rotate``
    frame by frame, each frame checked. Returns the plaintext's digest (for the
    caller to compare before using ``target``) and what was written.
    """
    # Decrypt under any key straight into a sealer that encrypts under the newest.
    with sealed.open("rb") as source, target.open("xb") as handle:
        sealer = Sealer(handle, fernet, owner, chunk_bytes=chunk)
        digest = unseal(source, sealer, fernet, owner)
        return digest, sealer.finish()


def new_workspace(work_dir: Path, stale_seconds: float) -> Path:
    """A new private directory under ``work_dir``; removes leftovers older than
    ``stale_seconds`` (a crash's: live ones are younger than any timeout)."""
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    work_dir.chmod(0o700)  # an existing directory keeps its old mode otherwise
    cutoff = time.time() - stale_seconds
    for leftover in work_dir.glob(f"{WORKSPACE_PREFIX}*"):
        if leftover.stat().st_mtime < cutoff:
            shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=WORKSPACE_PREFIX, dir=work_dir))  # mode 0700
