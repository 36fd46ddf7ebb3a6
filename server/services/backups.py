"""Encrypted graph backups: create, list, restore and re-encrypt (C11, C9).

A backup is the engine's own export of the graph (``EXPORT DATABASE``, run by
the graph's owning worker into a private directory named here), packed as a
deterministic tar, sealed as a sequence of Fernet tokens under the newest
backup key (:mod:`.backup_format`), stored in S3 with server-side encryption
under ``graphs/{graph_id}/backups/{backup_id}``, and recorded in PostgreSQL
with the encrypted size and the plaintext's SHA-256. A restore fetches the
object, opens every frame under any configured key, compares the SHA-256,
unpacks into a private directory and has the owning worker replace the
graph's data atomically (import beside it, swap directories by rename).

Resources: memory is bounded by one frame (about 5 MiB at the default 1 MiB
chunks) per running operation, at most ``max_concurrent`` of them (more are
refused with ``BACKUPS_BUSY``, safe to retry). Disk under ``work_dir`` peaks
at about the export plus its sealed object (4/3 of it) while creating, and
the sealed object plus the tar plus the unpacked export while restoring
(each removed as soon as the next step has it). The engine itself bounds the
graph size: its export and import need buffer pool in proportion to the graph
(see :mod:`graphgate.server.engine.snapshots`), otherwise
``GRAPH_TOO_LARGE_FOR_BACKUP``.

Key rotation: put the new key first in ``BACKUP_ENCRYPTION_KEYS``
(``"new,old"``); new backups use it at once and old ones still restore. Then
:meth:`BackupService.reencrypt_all` (or :meth:`~BackupService.reencrypt` per
backup) rewrites every object under the new key, which is
``MultiFernet.rotate`` applied frame by frame, with every frame and the
SHA-256 checked before the object is replaced; after that the old key can be
dropped from the list.

Security: plaintext exists only inside the process and in 0700 directories
under ``work_dir`` (inside the engine's data directory, removed after each
operation, leftovers of a crash after a day); what leaves the process is
Fernet ciphertext, stored with SSE-S3 on top. Object keys hold ids only. A
backup id is looked up together with its graph id, so another graph's backup
is ``NOT_FOUND`` exactly like an unknown one. A restore that fails any check
(a frame that does not authenticate under any key, frames out of order,
truncated or of another backup, a SHA-256 mismatch, a tar entry an export
never has) is refused with ``BACKUP_INTEGRITY``, audited as suspicious, and
leaves the graph untouched; the engine only ever imports verified files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import shutil
import tarfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import Principal
from graphgate.server.engine.layout import graphs_root
from graphgate.server.engine.pool import GraphEngine
from graphgate.server.errors import (
    FailedPrecondition,
    GraphgateError,
    Unavailable,
)
from graphgate.server.services.backup_archive import ArchiveRefused, unpack
from graphgate.server.services.backup_files import new_workspace, open_sealed, reseal, seal_export
from graphgate.server.services.backup_format import DEFAULT_CHUNK_BYTES, BrokenSeal, binding
from graphgate.server.services.pagination import decode_page_token, page_of
from graphgate.server.stores.backup_objects import BackupObjects
from graphgate.server.stores.backups import BackupRecord, BackupStore
from graphgate.server.stores.object_keys import backup_key, canonical_id

_log = logging.getLogger("graphgate.backups")


@dataclass(frozen=True, slots=True)
class BackupLimits:
    """How long, how many and how big backup work may be."""

    export_timeout_seconds: float = 600.0
    restore_timeout_seconds: float = 1800.0
    #: Creates, restores and re-encryptions running at once in this process.
    max_concurrent: int = 2
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    #: Work directories older than this are leftovers of a crash.
    stale_work_seconds: float = 86_400.0


@dataclass(frozen=True, slots=True)
class ReencryptReport:
    """The outcome of re-encrypting every backup under the newest key."""

    reencrypted: int
    failed: tuple[str, ...]


class BackupService:
    """Domain logic of the backup RPCs; callers were authorized as graph admins by the chain."""

    def __init__(
        self,
        *,
        store: BackupStore,
        objects: BackupObjects,
        engine: GraphEngine,
        keys: Sequence[str],
        audit: AuditLog,
        work_dir: Path,
        limits: BackupLimits | None = None,
    ) -> None:
        """Raises ``ValueError`` for a key that is not a Fernet key, or a ``work_dir``
        outside the engine's data directory (the workers refuse paths elsewhere)."""
        self._store = store
        self._objects = objects
        self._engine = engine
        self._audit = audit
        self._limits = limits or BackupLimits()
        # Newest first: MultiFernet encrypts with the first and decrypts with any.
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None
        work_dir = work_dir.resolve()
        data_dir = engine.data_dir
        if not work_dir.is_relative_to(data_dir) or work_dir.is_relative_to(graphs_root(data_dir)):
            raise ValueError("work_dir must be inside the engine's data directory, outside graphs/")
        self._work_dir = work_dir
        self._slots = asyncio.Semaphore(self._limits.max_concurrent)

    # --- RPCs ----------------------------------------------------------------

    async def create(self, principal: Principal, graph_id: str) -> BackupRecord:
        """Export, seal and store a backup of ``graph_id``; returns its record.

        Raises :class:`FailedPrecondition` (``BACKUPS_NOT_CONFIGURED``,
        ``GRAPH_TOO_LARGE_FOR_BACKUP``), :class:`Unavailable` (``BACKUPS_BUSY``,
        a store or worker), :class:`NotFound` (graph deleted meanwhile),
        :class:`DeadlineExceeded`. Nothing is recorded or left in S3 on failure.
        """
        fernet = self._require_fernet()
        graph_id = canonical_id(graph_id, "graph_id")
        backup_id = str(uuid.uuid4())
        key = backup_key(graph_id, backup_id)
        owner = binding(uuid.UUID(graph_id), uuid.UUID(backup_id))
        async with self._slot(), self._workspace() as work:
            export = work / "export"
            await self._engine.export_database(
                graph_id, export, timeout_seconds=self._limits.export_timeout_seconds
            )
            sealed = await asyncio.to_thread(
                seal_export, export, work / "sealed", fernet, owner, self._limits.chunk_bytes
            )
            await asyncio.to_thread(shutil.rmtree, export)
            try:
                size = await self._objects.put(key, work / "sealed")
                record = await self._store.insert(
                    backup_id=backup_id,
                    graph_id=graph_id,
                    created_by=principal.user_id,
                    object_key=key,
                    size_bytes=size,
                    sha256=sealed.sha256,
                )
            except BaseException:
                await self._objects.delete(key)  # never leave an unrecorded object behind
                raise
        _log.info("backup %s of graph %s stored (%d bytes)", backup_id, graph_id, size)
        return record

    async def list(
        self, graph_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[BackupRecord], str]:
        """A page of the graph's backups, newest first, and the next page's token."""
        size = page_size or 50
        records = await self._store.list_for_graph(
            canonical_id(graph_id, "graph_id"), limit=size + 1, before=decode_page_token(page_token)
        )
        return page_of(records, size, lambda r: (r.created_at, r.backup_id))

    async def restore(self, graph_id: str, backup_id: str) -> BackupRecord:
        """Replace the graph's data with one of its backups, after checking it in full.

        Raises :class:`NotFound` (``BACKUP_NOT_FOUND``: unknown, or another
        graph's), :class:`FailedPrecondition` (``BACKUP_INTEGRITY``: refused,
        graph untouched; ``BACKUP_OBJECT_MISSING``; ``BACKUPS_NOT_CONFIGURED``;
        ``IMPORT_FAILED``), :class:`Unavailable`, :class:`DeadlineExceeded`.
        On any failure the graph keeps its data.
        """
        fernet = self._require_fernet()
        record = await self._store.get(
            canonical_id(graph_id, "graph_id"), canonical_id(backup_id, "backup_id")
        )
        owner = binding(uuid.UUID(record.graph_id), uuid.UUID(record.backup_id))
        async with self._slot(), self._workspace() as work:
            await self._objects.get(record.object_key, work / "sealed")
            archive = work / "export.tar"
            try:
                digest = await asyncio.to_thread(
                    open_sealed, work / "sealed", archive, fernet, owner
                )
            except BrokenSeal as broken:
                raise self._integrity_failure(record, str(broken)) from None
            if not hmac.compare_digest(digest, record.sha256):
                raise self._integrity_failure(record, "SHA-256 differs from the recorded one")
            (work / "sealed").unlink()
            export = work / "export"
            try:
                await asyncio.to_thread(unpack, archive, export)
            except (ArchiveRefused, tarfile.TarError) as refused:
                raise self._integrity_failure(record, f"archive: {refused}") from None
            archive.unlink()
            await self._engine.replace_database(
                record.graph_id, export, timeout_seconds=self._limits.restore_timeout_seconds
            )
        self._audit.emit(
            AuditEventType.DATA_IMPORT,
            risk=RiskLevel.MEDIUM,
            outcome="restored",
            reason="BACKUP_RESTORED",
            backup_id=record.backup_id,
        )
        return record

    # --- key rotation and clean-up -------------------------------------------

    async def reencrypt(self, graph_id: str, backup_id: str) -> BackupRecord:
        """Rewrite one backup's object under the newest key (``MultiFernet.rotate``, checked).

        Every frame is opened under any key and the SHA-256 compared before
        the object is overwritten (one atomic PUT). Raises like :meth:`restore`.
        """
        fernet = self._require_fernet()
        record = await self._store.get(
            canonical_id(graph_id, "graph_id"), canonical_id(backup_id, "backup_id")
        )
        owner = binding(uuid.UUID(record.graph_id), uuid.UUID(record.backup_id))
        async with self._slot(), self._workspace() as work:
            await self._objects.get(record.object_key, work / "old")
            try:
                digest, _ = await asyncio.to_thread(
                    reseal, work / "old", work / "new", fernet, owner, self._limits.chunk_bytes
                )
            except BrokenSeal as broken:
                raise self._integrity_failure(record, str(broken)) from None
            if not hmac.compare_digest(digest, record.sha256):
                raise self._integrity_failure(record, "SHA-256 differs from the recorded one")
            size = await self._objects.put(record.object_key, work / "new")
        await self._store.set_size(record.backup_id, size)
        _log.info("backup %s re-encrypted under the newest key", record.backup_id)
        return dataclasses.replace(record, size_bytes=size)

    async def reencrypt_all(self, *, batch: int = 100) -> ReencryptReport:
        """Re-encrypt every backup of every graph under the newest key, one at a time.

        For a rotation job: a backup that fails is logged and listed, and the
        rest go on. Safe to run again (each run re-encrypts everything).
        """
        done, failed = 0, []
        after: str | None = None
        while records := await self._store.page_all(after=after, limit=batch):
            for record in records:
                try:
                    await self.reencrypt(record.graph_id, record.backup_id)
                    done += 1
                except GraphgateError as error:
                    _log.error("backup %s not re-encrypted: %s", record.backup_id, error.reason)
                    failed.append(record.backup_id)
            after = records[-1].backup_id
        return ReencryptReport(done, tuple(failed))

    async def forget_graph(self, graph_id: str) -> int:
        """Delete every backup object of a deleted graph (its rows went with it); returns how many.

        Raises :class:`StoreUnavailable`.
        """
        return await self._objects.delete_graph(canonical_id(graph_id, "graph_id"))

    # --- helpers -------------------------------------------------------------

    def _require_fernet(self) -> MultiFernet:
        if self._fernet is None:
            raise FailedPrecondition(
                public_message="backups are not configured on this server",
                reason="BACKUPS_NOT_CONFIGURED",
            )
        return self._fernet

    def _integrity_failure(self, record: BackupRecord, why: str) -> FailedPrecondition:
        _log.warning("backup %s refused: %s", record.backup_id, why)
        self._audit.emit(
            AuditEventType.SUSPICIOUS_ACTIVITY,
            risk=RiskLevel.HIGH,
            outcome="refused",
            reason="BACKUP_INTEGRITY",
            backup_id=record.backup_id,
            check=why,
        )
        # Tampering and a key this server no longer holds look the same from here.
        return FailedPrecondition(
            public_message="the backup could not be decrypted and verified; nothing was changed",
            reason="BACKUP_INTEGRITY",
        )

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        # Refuse rather than queue: a queued restore would outlive most client deadlines.
        if self._slots.locked():
            raise Unavailable(
                public_message="too many backups are running; retry later",
                reason="BACKUPS_BUSY",
                retry_after_seconds=5.0,
            )
        async with self._slots:
            yield

    @asynccontextmanager
    async def _workspace(self) -> AsyncIterator[Path]:
        path = await asyncio.to_thread(
            new_workspace, self._work_dir, self._limits.stale_work_seconds
        )
        try:
            yield path
        finally:
            await asyncio.to_thread(shutil.rmtree, path, True)
