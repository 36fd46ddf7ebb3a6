"""UploadService servicer: contract messages in and out of :class:`UploadService`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphgate.server.context import current_principal
from graphgate.server.handlers import convert
from graphgate.server.services.uploads import IngestProgress, UploadService
from graphgate.server.stores.uploads import UploadRecord
from graphgate.v1 import upload_pb2

_FORMATS: dict[upload_pb2.UploadFormat.ValueType, str] = {
    upload_pb2.UPLOAD_FORMAT_CSV: "csv",
    upload_pb2.UPLOAD_FORMAT_PARQUET: "parquet",
    upload_pb2.UPLOAD_FORMAT_JSON: "json",
}
_FORMAT_VALUES = {name: value for value, name in _FORMATS.items()}
_STATES: dict[str, upload_pb2.UploadState.ValueType] = {
    "pending": upload_pb2.UPLOAD_STATE_PENDING,
    "uploaded": upload_pb2.UPLOAD_STATE_UPLOADED,
    "validated": upload_pb2.UPLOAD_STATE_VALIDATED,
    "ingesting": upload_pb2.UPLOAD_STATE_INGESTING,
    "ingested": upload_pb2.UPLOAD_STATE_INGESTED,
    "failed": upload_pb2.UPLOAD_STATE_FAILED,
}


def _upload(record: UploadRecord) -> upload_pb2.Upload:
    return upload_pb2.Upload(
        upload_id=record.upload_id,
        graph_id=record.graph_id,
        table_name=record.table_name,
        file_name=record.file_name,
        format=_FORMAT_VALUES[record.format],
        size_bytes=record.size_bytes or record.declared_size,
        row_count=record.row_count,
        state=_STATES[record.state],
        error=record.error,
        created_at=convert.timestamp(record.created_at),
    )


def _progress(report: IngestProgress) -> upload_pb2.IngestUploadResponse:
    return upload_pb2.IngestUploadResponse(
        state=_STATES[report.state],
        rows_loaded=report.rows_loaded,
        bytes_read=report.bytes_read,
        upload=_upload(report.upload) if report.upload is not None else None,
    )


class UploadServicer:
    """Serves graphgate.v1.UploadService."""

    def __init__(self, uploads: UploadService) -> None:
        self._uploads = uploads

    async def CreateUpload(
        self, request: upload_pb2.CreateUploadRequest, context: Any
    ) -> upload_pb2.CreateUploadResponse:
        created = await self._uploads.create(
            current_principal(),
            request.graph_id,
            table_name=request.table_name,
            file_name=request.file_name,
            file_format=_FORMATS[request.format],
            size=request.size_bytes,
        )
        target = created.target
        return upload_pb2.CreateUploadResponse(
            upload=_upload(created.upload),
            url=target.url,
            method="POST",
            form_fields=target.fields,
            expires_at=convert.timestamp(target.expires_at),
        )

    async def CompleteUpload(
        self, request: upload_pb2.CompleteUploadRequest, context: Any
    ) -> upload_pb2.CompleteUploadResponse:
        record = await self._uploads.complete(
            current_principal(), request.graph_id, request.upload_id
        )
        return upload_pb2.CompleteUploadResponse(upload=_upload(record))

    async def IngestUpload(
        self, request: upload_pb2.IngestUploadRequest, context: Any
    ) -> AsyncIterator[upload_pb2.IngestUploadResponse]:
        async for report in self._uploads.ingest(request.graph_id, request.upload_id):
            yield _progress(report)

    async def GetUpload(
        self, request: upload_pb2.GetUploadRequest, context: Any
    ) -> upload_pb2.GetUploadResponse:
        record = await self._uploads.get(request.graph_id, request.upload_id)
        return upload_pb2.GetUploadResponse(upload=_upload(record))

    async def ListUploads(
        self, request: upload_pb2.ListUploadsRequest, context: Any
    ) -> upload_pb2.ListUploadsResponse:
        records, token = await self._uploads.list_uploads(
            request.graph_id, page_size=request.page_size, page_token=request.page_token
        )
        return upload_pb2.ListUploadsResponse(
            uploads=[_upload(r) for r in records], next_page_token=token
        )

    async def DeleteUpload(
        self, request: upload_pb2.DeleteUploadRequest, context: Any
    ) -> upload_pb2.DeleteUploadResponse:
        await self._uploads.delete(request.graph_id, request.upload_id)
        return upload_pb2.DeleteUploadResponse()
