"""The backup RPCs of GraphService, as a mixin of :class:`GraphServicer`.

The chain has already checked that the caller is an admin of ``graph_id``
(the RPCs' policy, C9); the service checks that a backup belongs to it.
"""

from __future__ import annotations

from typing import Any

from graphgate.server.context import current_principal
from graphgate.server.handlers import convert
from graphgate.server.services.backups import BackupService
from graphgate.server.stores.backups import BackupRecord
from graphgate.v1 import graph_pb2


def backup_message(record: BackupRecord) -> graph_pb2.Backup:
    """The contract's view of a backup record."""
    return graph_pb2.Backup(
        backup_id=record.backup_id,
        graph_id=record.graph_id,
        created_at=convert.timestamp(record.created_at),
        size_bytes=record.size_bytes,
        sha256=record.sha256,
    )


class BackupHandlers:
    """CreateBackup, ListBackups and RestoreBackup of graphgate.v1.GraphService."""

    def __init__(self, backups: BackupService) -> None:
        self._backups = backups

    async def CreateBackup(
        self, request: graph_pb2.CreateBackupRequest, context: Any
    ) -> graph_pb2.CreateBackupResponse:
        record = await self._backups.create(current_principal(), request.graph_id)
        return graph_pb2.CreateBackupResponse(backup=backup_message(record))

    async def ListBackups(
        self, request: graph_pb2.ListBackupsRequest, context: Any
    ) -> graph_pb2.ListBackupsResponse:
        records, token = await self._backups.list(
            request.graph_id, page_size=request.page_size, page_token=request.page_token
        )
        return graph_pb2.ListBackupsResponse(
            backups=[backup_message(r) for r in records], next_page_token=token
        )

    async def RestoreBackup(
        self, request: graph_pb2.RestoreBackupRequest, context: Any
    ) -> graph_pb2.RestoreBackupResponse:
        record = await self._backups.restore(request.graph_id, request.backup_id)
        return graph_pb2.RestoreBackupResponse(backup=backup_message(record))
