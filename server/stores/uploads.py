"""Uploads in PostgreSQL: records, the storage quota and the state machine.

Every statement names both the graph and the upload, so an upload id of
another graph is indistinguishable from an unknown one (C9). State changes
are single ``UPDATE … WHERE state = <expected>`` statements: of two racing
callers exactly one sees a row come back, which is what makes concurrent
validation or ingest of one upload impossible.

States: ``pending`` → ``uploaded`` (being validated) → ``validated`` →
``ingesting`` → ``ingested``; validation and ingest failures end in ``failed``.
A claim that was never finished (the process died) may be taken again once
it is older than the caller's ``stale_seconds``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Statements are literal text with $n parameters only; the column list is
# spelled out in each (explicit lists, never *).
_SELECT = (
    "SELECT upload_id, graph_id, created_by, table_name, file_name, format, declared_size, "
    "size_bytes, row_count, state, error, object_key, etag, sha256, created_at, updated_at "
    "FROM uploads WHERE graph_id = $1 AND upload_id = $2"
)
_LIST = (
    "SELECT upload_id, graph_id, created_by, table_name, file_name, format, declared_size, "
    "size_bytes, row_count, state, error, object_key, etag, sha256, created_at, updated_at "
    "FROM uploads WHERE graph_id = $1 "
    "AND ($2::timestamptz IS NULL OR (created_at, upload_id) < ($2, $3::uuid)) "
    "ORDER BY created_at DESC, upload_id DESC LIMIT $4"
)
_INSERT = (
    "INSERT INTO uploads (upload_id, graph_id, created_by, table_name, file_name, format, "
    "declared_size, object_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "RETURNING upload_id, graph_id, created_by, table_name, file_name, format, declared_size, "
    "size_bytes, row_count, state, error, object_key, etag, sha256, created_at, updated_at"
)
# Every state change: $3 the new state, allowed from the states in $4, or
# from $5 once it is older than $6 seconds; $7-$11 set the measured size,
# rows, ETag, hash and error when not null.
_MOVE = (
    "UPDATE uploads SET state = $3, updated_at = now(), "
    "size_bytes = coalesce($7, size_bytes), row_count = coalesce($8, row_count), "
    "etag = coalesce($9, etag), sha256 = coalesce($10, sha256), error = coalesce($11, error) "
    "WHERE graph_id = $1 AND upload_id = $2 AND (state = ANY($4::text[]) "
    "OR (state = $5 AND updated_at < now() - make_interval(secs => $6))) "
    "RETURNING upload_id, graph_id, created_by, table_name, file_name, format, declared_size, "
    "size_bytes, row_count, state, error, object_key, etag, sha256, created_at, updated_at"
)
_DELETE = (
    "DELETE FROM uploads WHERE graph_id = $1 AND upload_id = $2 AND (state <> 'ingesting' "
    "OR updated_at < now() - make_interval(secs => $3)) "
    "RETURNING upload_id, graph_id, created_by, table_name, file_name, format, declared_size, "
    "size_bytes, row_count, state, error, object_key, etag, sha256, created_at, updated_at"
)
#: Longest failure reason kept.
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """One upload as stored."""

    upload_id: str
    graph_id: str
    created_by: str | None
    table_name: str
    file_name: str
    format: str
    declared_size: int
    size_bytes: int
    row_count: int
    state: str
    error: str
    object_key: str
    etag: str | None
    sha256: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewUpload:
    """What CreateUpload stores."""

    upload_id: str
    graph_id: str
    created_by: str
    table_name: str
    file_name: str
    format: str
    declared_size: int
    object_key: str


def _record(row: asyncpg.Record) -> UploadRecord:
    created_by = row["created_by"]
    return UploadRecord(
        upload_id=str(row["upload_id"]),
        graph_id=str(row["graph_id"]),
        created_by=str(created_by) if created_by else None,
        table_name=row["table_name"],
        file_name=row["file_name"],
        format=row["format"],
        declared_size=int(row["declared_size"]),
        size_bytes=int(row["size_bytes"]),
        row_count=int(row["row_count"]),
        state=row["state"],
        error=row["error"],
        object_key=row["object_key"],
        etag=row["etag"],
        sha256=row["sha256"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _ids(graph_id: str, upload_id: str) -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.UUID(graph_id), uuid.UUID(upload_id)


class UploadStore:
    """All SQL about uploads."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def storage_tier(self, graph_id: str) -> str:
        """The tier of the graph's creator (``free`` if unknown), which sets its storage cap."""
        tier = await self._pool.fetchval(
            "SELECT u.tier FROM graphs g LEFT JOIN users u ON u.user_id = g.created_by "
            "WHERE g.graph_id = $1",
            uuid.UUID(graph_id),
        )
        return str(tier) if tier else "free"

    async def create(self, new: NewUpload, *, cap_bytes: int) -> tuple[UploadRecord | None, int]:
        """Insert a pending upload if the graph's uploads stay within ``cap_bytes``.

        Returns the record (None when the cap would be exceeded) and the bytes
        the graph's uploads held before. Every upload row counts (its declared
        size until its object is measured) until it is deleted. The graph's
        row is locked for the check, so two concurrent creations cannot both
        take the last free bytes; ``FOR NO KEY UPDATE`` still lets members
        and other rows that reference the graph be written meanwhile.
        """
        graph_id, upload_id = _ids(new.graph_id, new.upload_id)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT 1 FROM graphs WHERE graph_id = $1 FOR NO KEY UPDATE", graph_id
            )
            used = int(
                await conn.fetchval(
                    "SELECT coalesce(sum(greatest(declared_size, size_bytes)), 0) "
                    "FROM uploads WHERE graph_id = $1",
                    graph_id,
                )
            )
            if used + new.declared_size > cap_bytes:
                return None, used
            row = await conn.fetchrow(
                _INSERT,
                upload_id,
                graph_id,
                uuid.UUID(new.created_by),
                new.table_name,
                new.file_name,
                new.format,
                new.declared_size,
                new.object_key,
            )
        assert row is not None  # noqa: S101 - INSERT … RETURNING returns the row
        return _record(row), used

    async def get(self, graph_id: str, upload_id: str) -> UploadRecord | None:
        """One upload of the graph; None for an unknown id or another graph's."""
        row = await self._pool.fetchrow(_SELECT, *_ids(graph_id, upload_id))
        return _record(row) if row else None

    async def list_for_graph(
        self, graph_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[UploadRecord]:
        """The graph's uploads, newest first, older than a cursor."""
        before_time, before_id = before if before else (None, None)
        rows = await self._pool.fetch(
            _LIST,
            uuid.UUID(graph_id),
            before_time,
            uuid.UUID(before_id) if before_id else None,
            limit,
        )
        return [_record(r) for r in rows]

    async def _move(
        self,
        graph_id: str,
        upload_id: str,
        *,
        expected: Sequence[str],
        new_state: str,
        stale_state: str | None = None,
        stale_seconds: float = 0.0,
        size: int | None = None,
        rows: int | None = None,
        etag: str | None = None,
        sha256: str | None = None,
        error: str | None = None,
    ) -> UploadRecord | None:
        # One statement: its WHERE clause is the transition's guard.
        row = await self._pool.fetchrow(
            _MOVE,
            *_ids(graph_id, upload_id),
            new_state,
            list(expected),
            stale_state,
            stale_seconds,
            size,
            rows,
            etag,
            sha256,
            error,
        )
        return _record(row) if row else None

    async def begin_validation(
        self, graph_id: str, upload_id: str, *, stale_seconds: float
    ) -> UploadRecord | None:
        """``pending`` (or a stale ``uploaded``) → ``uploaded``; None if not in such a state."""
        return await self._move(
            graph_id,
            upload_id,
            expected=("pending",),
            new_state="uploaded",
            stale_state="uploaded",
            stale_seconds=stale_seconds,
        )

    async def return_to_pending(self, graph_id: str, upload_id: str) -> UploadRecord | None:
        """``uploaded`` → ``pending``: validation could not look at the object yet."""
        return await self._move(graph_id, upload_id, expected=("uploaded",), new_state="pending")

    async def mark_validated(
        self, graph_id: str, upload_id: str, *, size: int, rows: int, etag: str, sha256: str
    ) -> UploadRecord | None:
        """``uploaded`` → ``validated`` with what validation measured."""
        return await self._move(
            graph_id,
            upload_id,
            expected=("uploaded",),
            new_state="validated",
            size=size,
            rows=rows,
            etag=etag,
            sha256=sha256,
            error="",
        )

    async def begin_ingest(self, graph_id: str, upload_id: str) -> UploadRecord | None:
        """``validated`` → ``ingesting``; None if the upload is not validated (or taken)."""
        return await self._move(graph_id, upload_id, expected=("validated",), new_state="ingesting")

    async def mark_ingested(
        self, graph_id: str, upload_id: str, *, rows: int
    ) -> UploadRecord | None:
        """``ingesting`` → ``ingested`` with the rows the engine loaded."""
        return await self._move(
            graph_id,
            upload_id,
            expected=("ingesting",),
            new_state="ingested",
            rows=rows,
        )

    async def mark_failed(
        self, graph_id: str, upload_id: str, *, from_state: str, error: str, size: int | None = None
    ) -> UploadRecord | None:
        """``from_state`` → ``failed`` with a reason a client may read (and the measured size)."""
        return await self._move(
            graph_id,
            upload_id,
            expected=(from_state,),
            new_state="failed",
            size=size,
            error=error[:MAX_ERROR_CHARS],
        )

    async def delete(
        self, graph_id: str, upload_id: str, *, stale_seconds: float
    ) -> UploadRecord | None:
        """Delete an upload unless it is being ingested (or that ingest is stale)."""
        row = await self._pool.fetchrow(_DELETE, *_ids(graph_id, upload_id), stale_seconds)
        return _record(row) if row else None
