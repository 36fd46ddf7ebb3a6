"""Uploads: presigned direct uploads to S3, validation, all-or-nothing ingest (C19).

The life of an upload (states are kept in SQL, see :mod:`..stores.uploads`):

1. ``create``: the caller declares table, format and exact size; the size is
   checked against the caller's tier per-file limit and the graph's storage
   cap, the table against the graph's schema; S3 gets a presigned POST whose
   policy accepts exactly that size, content type and encryption. The bytes
   go from the client to S3; this service never proxies them.
2. ``complete``: the object is measured (HEAD), downloaded to a private file
   (SHA-256 computed on the way, conditional on the ETag just seen) and
   checked by content (:mod:`.upload_validation`): VALIDATED with its ETag,
   hash, size and rows, or FAILED with a reason.
3. ``ingest``: the object is downloaded again on condition that its ETag is
   still the validated one and its hash matches, into a private file inside
   the data directory, and the owning graph worker ``COPY``s it in one
   transaction. Progress streams; the final state and an audit event are
   recorded even if the client goes away, because the work runs in a task
   of its own.

Security: every file is untrusted and is judged by its content, never its
name; nothing of the client's text is part of an object key or a local path.
S3 enforces the size, type and encryption of what is stored; validation and
ingest re-check the size and read at most the validated number of bytes; a
swapped object (another POST to a still-valid target, or any write) changes
the ETag and hash and is refused with "object changed after validation".
Local copies are 0600 files in a 0700 directory inside the data directory,
removed in every case. Each query names the graph as well as the upload, so
another graph's upload answers NOT_FOUND like an unknown one (C9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import Principal
from graphgate.server.engine.pool import GraphEngine
from graphgate.server.errors import (
    FailedPrecondition,
    FieldViolation,
    GraphgateError,
    InvalidArgument,
    NotFound,
    QuotaViolation,
    RateLimited,
)
from graphgate.server.observability import Metrics
from graphgate.server.services.pagination import decode_page_token, page_of
from graphgate.server.services.upload_validation import (
    Checks,
    Rejected,
    TableSpec,
    still_fits,
    table_spec,
    validate,
)
from graphgate.server.stores.object_keys import upload_key
from graphgate.server.stores.objects import ObjectStore, PresignedPost
from graphgate.server.stores.uploads import NewUpload, UploadRecord, UploadStore

_log = logging.getLogger("graphgate.uploads")

MIB = 2**20
GIB = 2**30
#: The content type each format is uploaded with; the POST policy signs it.
CONTENT_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
}
#: Files left in the work directory by a crash are removed after this long.
_LEFTOVER_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Upload limits; sizes in bytes (MiB, GiB). Tiers are ``free``, ``pro``, ``enterprise``;
    an unknown tier gets ``free``'s limits."""

    max_file_bytes: Mapping[str, int] = field(
        default_factory=lambda: {"free": 100 * MIB, "pro": 100 * MIB, "enterprise": 100 * MIB}
    )
    #: Sum of a graph's stored uploads, by the tier of the graph's creator.
    storage_cap_bytes: Mapping[str, int] = field(
        default_factory=lambda: {"free": 10 * GIB, "pro": 50 * GIB, "enterprise": 100 * GIB}
    )
    max_rows_per_file: int = 10_000_000
    url_expiry_seconds: int = 900
    #: CSV rows whose values are type-checked at validation (JSON: all rows).
    sample_rows: int = 1000
    #: Longest line of a CSV or NDJSON file, or element of a JSON array (characters).
    max_record_bytes: int = MIB
    ingest_timeout_seconds: float = 3600.0
    #: A validation that has not finished after this long may be started again.
    validation_stale_seconds: float = 900.0
    #: Seconds between progress messages while the engine loads (it reports nothing meanwhile).
    progress_interval_seconds: float = 5.0
    #: Refuse objects S3 does not report as encrypted at rest (C11).
    require_encryption: bool = True

    def file_limit(self, tier: str) -> int:
        """The per-file size limit of ``tier``."""
        return self.max_file_bytes.get(tier, self.max_file_bytes["free"])

    def storage_cap(self, tier: str) -> int:
        """The per-graph storage cap of ``tier``."""
        return self.storage_cap_bytes.get(tier, self.storage_cap_bytes["free"])


@dataclass(frozen=True, slots=True)
class CreatedUpload:
    """A new upload and where to send its file."""

    upload: UploadRecord
    target: PresignedPost


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """One progress report; ``upload`` is set in the last one."""

    state: str
    rows_loaded: int
    bytes_read: int
    upload: UploadRecord | None = None


@dataclass(frozen=True, slots=True)
class _Validated:
    size: int
    rows: int
    etag: str
    sha256: str


class _NotUploadedYet(Exception):
    """CompleteUpload came before the file."""


def _not_found() -> NotFound:
    return NotFound(public_message="upload not found", reason="UPLOAD_NOT_FOUND")


class UploadService:
    """Domain logic of UploadService; callers were authorized (member or admin) by the chain."""

    def __init__(
        self,
        *,
        store: UploadStore,
        objects: ObjectStore,
        engine: GraphEngine,
        audit: AuditLog,
        limits: UploadLimits,
        work_dir: Path,
        metrics: Metrics | None = None,
    ) -> None:
        """``work_dir`` holds local copies; it must be inside the engine's data directory.

        Raises ``ValueError`` otherwise. Creates it (0700) and removes files a
        crash left there more than a day ago.
        """
        work = work_dir.resolve()
        if not work.is_relative_to(engine.data_dir):
            raise ValueError("the upload work directory must be inside the data directory")
        work.mkdir(mode=0o700, parents=True, exist_ok=True)
        work.chmod(0o700)
        self._work_dir = work
        self._metrics = metrics
        self._store = store
        self._objects = objects
        self._engine = engine
        self._audit = audit
        self._limits = limits
        self._ingests: set[asyncio.Task[UploadRecord]] = set()
        self._sweep()

    # --- files -----------------------------------------------------------------

    def _sweep(self) -> None:
        cutoff = time.time() - _LEFTOVER_SECONDS
        for leftover in self._work_dir.iterdir():
            with contextlib.suppress(OSError):
                if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def _private_file(self, upload_id: str, purpose: str) -> Path:
        # mkstemp: O_EXCL and mode 0600; the name is ours (ids and random letters only).
        handle, name = tempfile.mkstemp(prefix=f"{purpose}-{upload_id}-", dir=self._work_dir)
        os.close(handle)
        return Path(name)

    # --- lookups ---------------------------------------------------------------

    async def _existing(self, graph_id: str, upload_id: str) -> UploadRecord:
        record = await self._store.get(graph_id, upload_id)
        if record is None:
            raise _not_found()
        return record

    async def _table(self, graph_id: str, table_name: str) -> TableSpec:
        for table in await self._engine.get_schema(graph_id):
            if table.name != table_name:
                continue
            if table.kind != "NODE":
                raise InvalidArgument(
                    public_message=f"{table_name} is not a node table",
                    reason="NOT_A_NODE_TABLE",
                    violations=[FieldViolation("table_name", "must name a node table")],
                )
            return table_spec(
                table.name,
                [(c.name, c.type, c.name == table.primary_key) for c in table.columns],
            )
        raise NotFound(public_message=f"table {table_name} not found", reason="TABLE_NOT_FOUND")

    def _checks(self) -> Checks:
        limits = self._limits
        return Checks(
            max_rows=limits.max_rows_per_file,
            sample_rows=limits.sample_rows,
            max_record_bytes=limits.max_record_bytes,
        )

    # --- create ----------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        graph_id: str,
        *,
        table_name: str,
        file_name: str,
        file_format: str,
        size: int,
    ) -> CreatedUpload:
        """A pending upload and its presigned POST target.

        Raises ``InvalidArgument`` (``FILE_TOO_LARGE``, ``NOT_A_NODE_TABLE``),
        ``NotFound`` (``TABLE_NOT_FOUND``), ``RateLimited``
        (``STORAGE_CAP_EXCEEDED``, with a QuotaFailure).
        """
        limit = self._limits.file_limit(principal.tier)
        if size > limit:
            raise InvalidArgument(
                public_message=f"the file is larger than the {limit}-byte per-file limit",
                reason="FILE_TOO_LARGE",
                violations=[FieldViolation("size_bytes", f"must be at most {limit}")],
            )
        await self._table(graph_id, table_name)
        upload_id = str(uuid.uuid4())
        key = upload_key(graph_id, upload_id)
        cap = self._limits.storage_cap(await self._store.storage_tier(graph_id))
        record, used = await self._store.create(
            NewUpload(
                upload_id=upload_id,
                graph_id=graph_id,
                created_by=principal.user_id,
                table_name=table_name,
                file_name=file_name,
                format=file_format,
                declared_size=size,
                object_key=key,
            ),
            cap_bytes=cap,
        )
        if record is None:
            self._audit.emit(
                AuditEventType.DATA_IMPORT,
                risk=RiskLevel.LOW,
                outcome="refused",
                reason="STORAGE_CAP_EXCEEDED",
                bytes=size,
                used_bytes=used,
            )
            raise RateLimited(
                public_message="the graph's upload storage cap is reached; delete uploads first",
                reason="STORAGE_CAP_EXCEEDED",
                quota_violations=[
                    QuotaViolation(
                        subject=f"graph:{graph_id}",
                        description=f"{used} of {cap} bytes used; {size} more requested",
                    )
                ],
            )
        target = self._objects.presign_post(
            key,
            size=size,
            content_type=CONTENT_TYPES[file_format],
            expires_seconds=self._limits.url_expiry_seconds,
        )
        return CreatedUpload(upload=record, target=target)

    # --- complete --------------------------------------------------------------

    async def complete(self, principal: Principal, graph_id: str, upload_id: str) -> UploadRecord:
        """Validate the uploaded object: the upload, VALIDATED or FAILED (with a reason).

        Idempotent once validation ended (returns the upload as it is).
        Raises ``NotFound``, ``FailedPrecondition`` (``UPLOAD_MISSING`` when
        the file is not stored yet, ``UPLOAD_BUSY`` during another validation)
        and store errors, after which the upload is PENDING again.
        """
        record = await self._store.begin_validation(
            graph_id, upload_id, stale_seconds=self._limits.validation_stale_seconds
        )
        if record is None:
            current = await self._existing(graph_id, upload_id)
            if current.state == "uploaded":
                raise FailedPrecondition(
                    public_message="the upload is being validated", reason="UPLOAD_BUSY"
                )
            return current
        try:
            checked = await self._validate(record, self._limits.file_limit(principal.tier))
        except Rejected as rejected:
            self._audit.emit(
                AuditEventType.INPUT_VALIDATION_FAILURE,
                risk=RiskLevel.LOW,
                outcome="rejected",
                reason="UPLOAD_REJECTED",
                upload_id=upload_id,
                file_format=record.format,
            )
            failed = await self._store.mark_failed(
                graph_id, upload_id, from_state="uploaded", error=str(rejected)
            )
            if failed is None:
                raise _not_found() from None
            return failed
        except _NotUploadedYet:
            await self._store.return_to_pending(graph_id, upload_id)
            raise FailedPrecondition(
                public_message="the file has not been uploaded yet", reason="UPLOAD_MISSING"
            ) from None
        except BaseException:
            # Nothing was decided about the file: let the caller try again.
            await asyncio.shield(self._store.return_to_pending(graph_id, upload_id))
            raise
        validated = await self._store.mark_validated(
            graph_id,
            upload_id,
            size=checked.size,
            rows=checked.rows,
            etag=checked.etag,
            sha256=checked.sha256,
        )
        if validated is None:
            raise _not_found()  # deleted meanwhile
        return validated

    async def _validate(self, record: UploadRecord, file_limit: int) -> _Validated:
        info = await self._objects.head(record.object_key)
        if info is None:
            raise _NotUploadedYet
        if info.size != record.declared_size:
            raise Rejected(
                f"the stored file has {info.size} bytes, not the {record.declared_size} declared"
            )
        if info.size > file_limit:
            raise Rejected(f"the file is larger than the {file_limit}-byte per-file limit")
        if info.content_type != CONTENT_TYPES[record.format]:
            raise Rejected("the stored file does not have the content type it was signed for")
        if self._limits.require_encryption and not info.encryption:
            raise Rejected("the stored file is not encrypted at rest")
        try:
            table = await self._table(record.graph_id, record.table_name)
        except (NotFound, InvalidArgument) as gone:
            raise Rejected(gone.public_message) from None
        path = self._private_file(record.upload_id, "validate")
        try:
            copy = await self._objects.download(
                record.object_key, path, if_match=info.etag, expected_size=info.size
            )
            rows = await asyncio.to_thread(validate, path, record.format, table, self._checks())
        finally:
            path.unlink(missing_ok=True)
        return _Validated(size=copy.size, rows=rows, etag=info.etag, sha256=copy.sha256)

    # --- ingest ----------------------------------------------------------------

    async def ingest(self, graph_id: str, upload_id: str) -> AsyncIterator[IngestProgress]:
        """Load a VALIDATED upload into its table, all or nothing, reporting progress.

        Yields INGESTING reports (download progress, then the load) and ends
        with INGESTED and the upload. On failure the graph is unchanged, the
        upload FAILED with the reason, and the error is raised:
        ``FailedPrecondition`` (``OBJECT_CHANGED``, ``UPLOAD_NOT_VALIDATED``),
        ``InvalidArgument`` (the engine's scrubbed message), ``NotFound``,
        ``DeadlineExceeded``, ``Unavailable``. The work goes on, and its outcome is
        recorded, if the caller stops listening.
        """
        record = await self._store.begin_ingest(graph_id, upload_id)
        if record is None:
            current = await self._existing(graph_id, upload_id)
            raise FailedPrecondition(
                public_message=f"the upload is {current.state}; only a validated upload "
                "can be ingested",
                reason="UPLOAD_NOT_VALIDATED",
            )
        reports: asyncio.Queue[IngestProgress | None] = asyncio.Queue()
        task = asyncio.create_task(self._ingest(record, reports.put_nowait))
        self._ingests.add(task)
        task.add_done_callback(self._finished)
        last = IngestProgress(state="ingesting", rows_loaded=0, bytes_read=0)
        yield last
        while True:
            try:
                report = await asyncio.wait_for(
                    reports.get(), timeout=self._limits.progress_interval_seconds
                )
            except TimeoutError:
                yield last  # the engine says nothing while it copies: a heartbeat
                continue
            if report is None:
                break
            last = report
            yield report
        # shield: a client that leaves must not cancel the ingest itself.
        done = await asyncio.shield(task)
        yield IngestProgress(
            state=done.state, rows_loaded=done.row_count, bytes_read=done.size_bytes, upload=done
        )

    def _finished(self, task: asyncio.Task[UploadRecord]) -> None:
        self._ingests.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that left would never read it

    async def _ingest(
        self, record: UploadRecord, report: Callable[[IngestProgress | None], None]
    ) -> UploadRecord:
        try:
            rows = await self._load(record, report)
        finally:
            report(None)  # always: the stream waits for it
        if self._metrics is not None:
            self._metrics.ingest_rows(rows)
        done = await self._store.mark_ingested(record.graph_id, record.upload_id, rows=rows)
        self._audit.emit(
            AuditEventType.DATA_IMPORT,
            risk=RiskLevel.LOW,
            outcome="success",
            upload_id=record.upload_id,
            table=record.table_name,
            file_format=record.format,
            rows=rows,
            bytes=record.size_bytes,
        )
        if done is None:
            raise _not_found()  # deleted as a stale ingest meanwhile; the rows are in
        return done

    async def _load(
        self, record: UploadRecord, report: Callable[[IngestProgress | None], None]
    ) -> int:
        """Download, check and COPY; on any failure the upload is FAILED and the error raised."""
        total = record.size_bytes

        def downloading(done: int) -> None:
            report(IngestProgress(state="ingesting", rows_loaded=0, bytes_read=done))

        def loading(done: int, _: int) -> None:
            report(IngestProgress(state="ingesting", rows_loaded=0, bytes_read=total))

        path: Path | None = None
        try:
            if not record.etag or not record.sha256:
                raise FailedPrecondition(
                    public_message="the upload has no validated checksum",
                    reason="UPLOAD_NOT_VALIDATED",
                )
            path = self._private_file(record.upload_id, "ingest")
            copy = await self._objects.download(
                record.object_key,
                path,
                if_match=record.etag,
                expected_size=total,
                on_progress=downloading,
            )
            if copy.sha256 != record.sha256:
                raise FailedPrecondition(
                    public_message="object changed after validation", reason="OBJECT_CHANGED"
                )
            table = await self._table(record.graph_id, record.table_name)
            await asyncio.to_thread(still_fits, path, record.format, table)
            return await self._engine.bulk_load(
                record.graph_id,
                record.table_name,
                path,
                record.format,
                on_progress=loading,
                timeout_seconds=self._limits.ingest_timeout_seconds,
            )
        except Rejected as rejected:
            await self._ingest_failed(record, str(rejected), "UPLOAD_REJECTED")
            raise FailedPrecondition(
                public_message=str(rejected), reason="UPLOAD_REJECTED"
            ) from None
        except GraphgateError as error:
            await self._ingest_failed(record, error.public_message, error.reason)
            raise
        except BaseException:
            await asyncio.shield(self._ingest_failed(record, "ingest interrupted", "INTERNAL"))
            raise
        finally:
            if path is not None:
                path.unlink(missing_ok=True)

    async def _ingest_failed(self, record: UploadRecord, message: str, reason: str) -> None:
        changed = reason == "OBJECT_CHANGED"
        self._audit.emit(
            AuditEventType.DATA_IMPORT,
            risk=RiskLevel.HIGH if changed else RiskLevel.MEDIUM,
            outcome="refused" if changed else "failed",
            reason=reason,
            upload_id=record.upload_id,
            table=record.table_name,
            file_format=record.format,
            rows=0,
            bytes=record.size_bytes,
        )
        try:
            await self._store.mark_failed(
                record.graph_id, record.upload_id, from_state="ingesting", error=message
            )
        except Exception:
            _log.exception("upload %s: the failed ingest could not be recorded", record.upload_id)

    # --- read and delete -------------------------------------------------------

    async def get(self, graph_id: str, upload_id: str) -> UploadRecord:
        """One upload of the graph. Raises ``NotFound`` (also for another graph's upload)."""
        return await self._existing(graph_id, upload_id)

    async def list_uploads(
        self, graph_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[UploadRecord], str]:
        """A page of the graph's uploads, newest first, and the next page's token."""
        size = page_size or 50
        records = await self._store.list_for_graph(
            graph_id, limit=size + 1, before=decode_page_token(page_token)
        )
        return page_of(records, size, lambda r: (r.created_at, r.upload_id))

    async def delete(self, graph_id: str, upload_id: str) -> None:
        """Delete an upload and its object. Raises ``NotFound``, ``FailedPrecondition``
        (``UPLOAD_BUSY`` while it is being ingested)."""
        stale = self._limits.ingest_timeout_seconds + 60.0
        record = await self._existing(graph_id, upload_id)
        busy = FailedPrecondition(
            public_message="the upload is being ingested", reason="UPLOAD_BUSY"
        )
        age = time.time() - record.updated_at.timestamp()
        if record.state == "ingesting" and age < stale:
            raise busy
        # The object first: a row without its object fails cleanly later,
        # an object without its row would be storage nobody accounts for.
        await self._objects.delete(record.object_key)
        if await self._store.delete(graph_id, upload_id, stale_seconds=stale) is None:
            if await self._store.get(graph_id, upload_id) is None:
                raise _not_found()
            raise busy

    async def aclose(self, grace: float = 5.0) -> None:
        """Give running ingests ``grace`` seconds, then cancel them (they are marked FAILED)."""
        if not self._ingests:
            return
        _, pending = await asyncio.wait(set(self._ingests), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
