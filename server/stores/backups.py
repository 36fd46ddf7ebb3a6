"""Backup records in PostgreSQL: which encrypted object holds which graph's export.

Security: every lookup by backup id also names the graph, in the same
statement, so a backup id of another graph is indistinguishable from an
unknown one (one indexed query either way, the same :class:`NotFound`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from graphgate.server.errors import NotFound


@dataclass(frozen=True, slots=True)
class BackupRecord:
    """One backup: its object, the encrypted size and the plaintext's SHA-256 (hex)."""

    backup_id: str
    graph_id: str
    created_by: str | None
    object_key: str
    size_bytes: int
    sha256: str
    created_at: datetime


def _record(row: asyncpg.Record) -> BackupRecord:
    creator = row["created_by"]
    return BackupRecord(
        backup_id=str(row["backup_id"]),
        graph_id=str(row["graph_id"]),
        created_by=str(creator) if creator else None,
        object_key=row["object_key"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        created_at=row["created_at"],
    )


def backup_not_found() -> NotFound:
    """The one answer for an unknown backup and for another graph's."""
    return NotFound(public_message="backup not found", reason="BACKUP_NOT_FOUND")


class BackupStore:
    """All SQL about backups."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(
        self,
        *,
        backup_id: str,
        graph_id: str,
        created_by: str | None,
        object_key: str,
        size_bytes: int,
        sha256: str,
    ) -> BackupRecord:
        """Record a stored backup. Raises :class:`NotFound` if the graph was deleted meanwhile."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO backups (backup_id, graph_id, created_by, object_key, size_bytes, "
                "sha256) VALUES ($1, $2, $3, $4, $5, $6) RETURNING backup_id, graph_id, "
                "created_by, object_key, size_bytes, sha256, created_at",
                uuid.UUID(backup_id),
                uuid.UUID(graph_id),
                uuid.UUID(created_by) if created_by else None,
                object_key,
                size_bytes,
                sha256,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(public_message="graph not found", reason="GRAPH_NOT_FOUND") from exc
        assert row is not None  # noqa: S101 - INSERT … RETURNING returns the row
        return _record(row)

    async def get(self, graph_id: str, backup_id: str) -> BackupRecord:
        """The backup ``backup_id`` of ``graph_id``; :class:`NotFound` otherwise, either way."""
        row = await self._pool.fetchrow(
            "SELECT backup_id, graph_id, created_by, object_key, size_bytes, sha256, created_at "
            "FROM backups WHERE backup_id = $1 AND graph_id = $2",
            uuid.UUID(backup_id),
            uuid.UUID(graph_id),
        )
        if row is None:
            raise backup_not_found()
        return _record(row)

    async def list_for_graph(
        self, graph_id: str, *, limit: int, before: tuple[datetime, str] | None
    ) -> list[BackupRecord]:
        """A graph's backups, newest first, older than a cursor."""
        before_time, before_id = before if before else (None, None)
        rows = await self._pool.fetch(
            "SELECT backup_id, graph_id, created_by, object_key, size_bytes, sha256, created_at "
            "FROM backups WHERE graph_id = $1 "
            "AND ($2::timestamptz IS NULL OR (created_at, backup_id) < ($2, $3::uuid)) "
            "ORDER BY created_at DESC, backup_id DESC LIMIT $4",
            uuid.UUID(graph_id),
            before_time,
            uuid.UUID(before_id) if before_id else None,
            limit,
        )
        return [_record(r) for r in rows]

    async def page_all(self, *, after: str | None, limit: int) -> list[BackupRecord]:
        """Every graph's backups by id, after a cursor (for re-encryption under a new key)."""
        rows = await self._pool.fetch(
            "SELECT backup_id, graph_id, created_by, object_key, size_bytes, sha256, created_at "
            "FROM backups WHERE ($1::uuid IS NULL OR backup_id > $1) "
            "ORDER BY backup_id LIMIT $2",
            uuid.UUID(after) if after else None,
            limit,
        )
        return [_record(r) for r in rows]

    async def set_size(self, backup_id: str, size_bytes: int) -> None:
        """Record a re-encrypted object's size."""
        await self._pool.execute(
            "UPDATE backups SET size_bytes = $2 WHERE backup_id = $1",
            uuid.UUID(backup_id),
            size_bytes,
        )
