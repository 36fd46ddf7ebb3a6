"""``client.uploads``: data files into graph tables (UploadService).

:meth:`Uploads.upload_file` does the whole trip: ``CreateUpload`` (a
presigned, time-limited target), the file sent straight to storage with httpx
(a POST form or a PUT, as the server says, streamed from disk with progress),
``CompleteUpload`` (the server validates size, format and rows), then
``IngestUpload``, whose progress stream feeds the same callback. The service
never proxies file bytes.

Security: the presigned URL and form fields are credentials for one object;
they are never logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import grpc

from graphgate.clients.contract import rpc
from graphgate.clients.errors import UploadError, from_rpc_error
from graphgate.clients.models import (
    IngestProgress,
    Upload,
    UploadFormat,
    UploadProgress,
    UploadState,
    UploadTarget,
)
from graphgate.clients.models import _time as _timestamp
from graphgate.clients.transport import AsyncTransport, Op, Transport, new_request_id
from graphgate.v1 import upload_pb2

if TYPE_CHECKING:
    import httpx

ProgressCallback = Callable[[UploadProgress], None]
_CHUNK = 256 * 1024
_INGEST = rpc("UploadService", "IngestUpload")
#: Seconds a transfer may stall (no bytes moving) before it fails.
_TRANSFER_TIMEOUT = 120.0


def _target(reply: upload_pb2.CreateUploadResponse) -> UploadTarget:
    return UploadTarget(
        upload=Upload.from_proto(reply.upload),
        url=reply.url,
        method=(reply.method or "PUT").upper(),
        form_fields=dict(reply.form_fields),
        headers=dict(reply.headers),
        expires_at=_timestamp(reply.expires_at),
    )


def _create(
    graph_id: str, table: str, file_name: str, fmt: UploadFormat | str, size_bytes: int
) -> Op[UploadTarget]:
    request = upload_pb2.CreateUploadRequest(
        graph_id=graph_id,
        table_name=table,
        file_name=file_name,
        format=UploadFormat.parse(fmt).to_proto(),  # type: ignore[arg-type]
        size_bytes=size_bytes,
    )
    return Op(rpc("UploadService", "CreateUpload"), request, _target)


def _upload_of(reply: Any) -> Upload:
    return Upload.from_proto(reply.upload)


def _complete(graph_id: str, upload_id: str) -> Op[Upload]:
    return Op(
        rpc("UploadService", "CompleteUpload"),
        upload_pb2.CompleteUploadRequest(graph_id=graph_id, upload_id=upload_id),
        _upload_of,
    )


def _get(graph_id: str, upload_id: str) -> Op[Upload]:
    return Op(
        rpc("UploadService", "GetUpload"),
        upload_pb2.GetUploadRequest(graph_id=graph_id, upload_id=upload_id),
        _upload_of,
    )


def _page(graph_id: str, page_size: int, token: str) -> Op[tuple[list[Upload], str]]:
    return Op(
        rpc("UploadService", "ListUploads"),
        upload_pb2.ListUploadsRequest(graph_id=graph_id, page_size=page_size, page_token=token),
        lambda r: ([Upload.from_proto(u) for u in r.uploads], r.next_page_token),
    )


def _delete(graph_id: str, upload_id: str) -> Op[None]:
    return Op(
        rpc("UploadService", "DeleteUpload"),
        upload_pb2.DeleteUploadRequest(graph_id=graph_id, upload_id=upload_id),
        lambda _: None,
    )


def _progress(message: upload_pb2.IngestUploadResponse) -> IngestProgress:
    return IngestProgress(
        state=UploadState.from_proto(message.state),
        rows_loaded=message.rows_loaded,
        bytes_read=message.bytes_read,
        upload=Upload.from_proto(message.upload) if message.HasField("upload") else None,
    )


def _failed(upload: Upload, phase: str) -> UploadError:
    return UploadError(
        f"{phase} failed: {upload.error or 'no reason given'}",
        reason="UPLOAD_FAILED",
        metadata={"upload_id": upload.upload_id},
    )


def _plan(
    path: str | os.PathLike[str], fmt: UploadFormat | str | None
) -> tuple[Path, UploadFormat, int]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    chosen = UploadFormat.parse(fmt) if fmt is not None else UploadFormat.from_path(file.name)
    return file, chosen, file.stat().st_size


class _CountingReader(io.RawIOBase):
    """A binary file that reports how far it has been read (httpx streams it)."""

    def __init__(self, handle: IO[bytes], report: Callable[[int], None]) -> None:
        super().__init__()
        self._handle = handle
        self._report = report
        self._sent = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._handle.fileno()

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        self._sent = position  # httpx rewinds before sending
        return position

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        if chunk:
            self._sent += len(chunk)
            self._report(self._sent)
        return chunk


def _check_response(status: int, text: str) -> None:
    if not 200 <= status < 300:
        # Storage error bodies are XML from the storage service, not secrets; keep them short.
        raise UploadError(
            f"the storage target refused the file (HTTP {status}): {text[:200]}",
            reason="TRANSFER_FAILED",
        )


def _multipart(
    target: UploadTarget, size: int, file_chunks: AsyncIterator[bytes]
) -> tuple[dict[str, str], AsyncIterator[bytes]]:
    """A multipart/form-data body (fields, then the file) streamed with a known length.

    httpx's own multipart encoder reads files synchronously, which would block
    the event loop; this one takes already-async file chunks.
    """
    boundary = secrets.token_hex(16)
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in target.form_fields.items()
    )
    file_name = target.upload.file_name.replace('"', "%22")
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for chunk in file_chunks:
            yield chunk
        yield tail

    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
    }
    return headers, body()


def _timeout() -> httpx.Timeout:
    import httpx

    return httpx.Timeout(_TRANSFER_TIMEOUT, connect=30.0)


class Uploads:
    """Data files into graph tables."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self, graph_id: str, table: str, file_name: str, format: UploadFormat | str, size_bytes: int
    ) -> UploadTarget:
        """Declare a file and get its presigned target (see :meth:`upload_file`)."""
        return self._t.run(_create(graph_id, table, file_name, format, size_bytes))

    def complete(self, graph_id: str, upload_id: str) -> Upload:
        """Validate what was sent; the upload comes back VALIDATED or FAILED."""
        return self._t.run(_complete(graph_id, upload_id))

    def ingest(self, graph_id: str, upload_id: str) -> Iterator[IngestProgress]:
        """Load a validated upload into its table, all or nothing, with progress.
        Closing the iterator early cancels the call."""
        request_id = new_request_id()
        call = self._t.start_stream(
            _INGEST,
            upload_pb2.IngestUploadRequest(graph_id=graph_id, upload_id=upload_id),
            request_id,
        )
        try:
            for message in call:
                yield _progress(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, request_id=request_id) from exc
        finally:
            call.cancel()

    def get(self, graph_id: str, upload_id: str) -> Upload:
        """One upload."""
        return self._t.run(_get(graph_id, upload_id))

    def delete(self, graph_id: str, upload_id: str) -> None:
        """Delete an upload and its stored object."""
        self._t.run(_delete(graph_id, upload_id))

    def upload_file(
        self,
        graph_id: str,
        table: str,
        path: str | os.PathLike[str],
        *,
        format: UploadFormat | str | None = None,
        on_progress: ProgressCallback | None = None,
        http: httpx.Client | None = None,
    ) -> Upload:
        """Send a local file into ``table`` of ``graph_id``; returns the INGESTED upload.

        ``format`` defaults to the file's extension. ``on_progress`` hears
        :class:`~graphgate.clients.UploadProgress` reports for each phase.
        Raises :class:`~graphgate.clients.UploadError` if the transfer,
        validation or ingest fails (the upload's ``error`` in the message).
        """
        file, fmt, size = _plan(path, format)
        report = on_progress or (lambda _: None)
        target = self.create(graph_id, table, file.name, fmt, size)
        upload_id = target.upload.upload_id
        self._transfer(target, file, size, report, http)
        report(UploadProgress("validate", size, size, state=UploadState.UPLOADED))
        upload = self.complete(graph_id, upload_id)
        if upload.state is UploadState.FAILED:
            raise _failed(upload, "validation")
        report(UploadProgress("validate", size, size, upload.row_count, upload.state))
        last = upload
        for step in self.ingest(graph_id, upload_id):
            report(UploadProgress("ingest", step.bytes_read, size, step.rows_loaded, step.state))
            last = step.upload or last
        if last.state is not UploadState.INGESTED:
            last = self.get(graph_id, upload_id)
        if last.state is UploadState.FAILED:
            raise _failed(last, "ingest")
        return last

    def _transfer(
        self,
        target: UploadTarget,
        file: Path,
        size: int,
        report: ProgressCallback,
        http: httpx.Client | None,
    ) -> None:
        import httpx

        def sent(count: int) -> None:
            report(UploadProgress("upload", count, size))

        report(UploadProgress("upload", 0, size))
        with contextlib.ExitStack() as stack:
            client: httpx.Client = http or stack.enter_context(httpx.Client(timeout=_timeout()))
            reader = _CountingReader(stack.enter_context(file.open("rb")), sent)
            if target.method == "POST":
                upload = cast(IO[bytes], reader)
                files = {"file": (target.upload.file_name, upload, "application/octet-stream")}
                response = client.post(target.url, data=target.form_fields, files=files)
            else:
                headers = {**target.headers, "Content-Length": str(size)}
                response = client.request(
                    target.method,
                    target.url,
                    content=iter(lambda: reader.read(_CHUNK), b""),
                    headers=headers,
                )
            _check_response(response.status_code, response.text)

    def list(self, graph_id: str, *, page_size: int = 0) -> Iterator[Upload]:
        """A graph's uploads, newest first, fetched page by page."""
        token = ""
        while True:
            uploads, token = self._t.run(_page(graph_id, page_size, token))
            yield from uploads
            if not token:
                return


class AsyncUploads:
    """Data files into graph tables (async)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(
        self, graph_id: str, table: str, file_name: str, format: UploadFormat | str, size_bytes: int
    ) -> UploadTarget:
        """Declare a file and get its presigned target."""
        return await self._t.run(_create(graph_id, table, file_name, format, size_bytes))

    async def complete(self, graph_id: str, upload_id: str) -> Upload:
        """Validate what was sent; the upload comes back VALIDATED or FAILED."""
        return await self._t.run(_complete(graph_id, upload_id))

    async def ingest(self, graph_id: str, upload_id: str) -> AsyncIterator[IngestProgress]:
        """Load a validated upload into its table, with progress (``async for``)."""
        request_id = new_request_id()
        call = await self._t.start_stream(
            _INGEST,
            upload_pb2.IngestUploadRequest(graph_id=graph_id, upload_id=upload_id),
            request_id,
        )
        try:
            async for message in call:
                yield _progress(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, request_id=request_id) from exc
        finally:
            call.cancel()

    async def get(self, graph_id: str, upload_id: str) -> Upload:
        """One upload."""
        return await self._t.run(_get(graph_id, upload_id))

    async def delete(self, graph_id: str, upload_id: str) -> None:
        """Delete an upload and its stored object."""
        await self._t.run(_delete(graph_id, upload_id))

    async def upload_file(
        self,
        graph_id: str,
        table: str,
        path: str | os.PathLike[str],
        *,
        format: UploadFormat | str | None = None,
        on_progress: ProgressCallback | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> Upload:
        """Like :meth:`Uploads.upload_file`, without blocking the event loop on disk reads."""
        file, fmt, size = _plan(path, format)
        report = on_progress or (lambda _: None)
        target = await self.create(graph_id, table, file.name, fmt, size)
        upload_id = target.upload.upload_id
        await self._transfer(target, file, size, report, http)
        report(UploadProgress("validate", size, size, state=UploadState.UPLOADED))
        upload = await self.complete(graph_id, upload_id)
        if upload.state is UploadState.FAILED:
            raise _failed(upload, "validation")
        report(UploadProgress("validate", size, size, upload.row_count, upload.state))
        last = upload
        async for step in self.ingest(graph_id, upload_id):
            report(UploadProgress("ingest", step.bytes_read, size, step.rows_loaded, step.state))
            last = step.upload or last
        if last.state is not UploadState.INGESTED:
            last = await self.get(graph_id, upload_id)
        if last.state is UploadState.FAILED:
            raise _failed(last, "ingest")
        return last

    async def _transfer(
        self,
        target: UploadTarget,
        file: Path,
        size: int,
        report: ProgressCallback,
        http: httpx.AsyncClient | None,
    ) -> None:
        import httpx

        def sent(count: int) -> None:
            report(UploadProgress("upload", count, size))

        report(UploadProgress("upload", 0, size))
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient(timeout=_timeout()))
            client = http
            handle = stack.enter_context(file.open("rb"))
            reader = _CountingReader(handle, sent)

            async def chunks() -> AsyncIterator[bytes]:
                # Disk reads off the loop thread, one chunk at a time.
                while chunk := await asyncio.to_thread(reader.read, _CHUNK):
                    yield chunk

            if target.method == "POST":
                headers, body = _multipart(target, size, chunks())
                response = await client.post(target.url, content=body, headers=headers)
            else:
                headers = {**target.headers, "Content-Length": str(size)}
                response = await client.request(
                    target.method, target.url, content=chunks(), headers=headers
                )
            _check_response(response.status_code, response.text)

    async def list(self, graph_id: str, *, page_size: int = 0) -> AsyncIterator[Upload]:
        """A graph's uploads, newest first (``async for``)."""
        token = ""
        while True:
            uploads, token = await self._t.run(_page(graph_id, page_size, token))
            for upload in uploads:
                yield upload
            if not token:
                return
