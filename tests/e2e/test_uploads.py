"""UploadService end to end: real channel, real presigned POSTs to the embedded
S3 (httpx), real graph workers; rows read back through GraphService.

The helpers here are shared with ``tests/security/test_c19_uploads.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from grpc import aio

from graphgate.server import app
from graphgate.server.app import GraphgateServer
from graphgate.server.assembly import Services
from graphgate.server.handlers.uploads import UploadServicer
from graphgate.server.services.uploads import UploadLimits, UploadService
from graphgate.server.stores.objects import ObjectStore
from graphgate.server.stores.uploads import UploadStore
from graphgate.v1 import graph_pb2, graph_pb2_grpc, upload_pb2, upload_pb2_grpc
from tests.support import Account, bearer, code_of, register, wait_for_event

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
SCHEMA = ["CREATE NODE TABLE Item(id INT64 PRIMARY KEY, name STRING, score DOUBLE, amount INT64)"]
FORMATS = {
    "csv": upload_pb2.UPLOAD_FORMAT_CSV,
    "parquet": upload_pb2.UPLOAD_FORMAT_PARQUET,
    "json": upload_pb2.UPLOAD_FORMAT_JSON,
}
Row = tuple[int, str, float, int]


# --- shared helpers ------------------------------------------------------------


def upload_service(services: Services, limits: UploadLimits | None = None) -> UploadService:
    """The service as the lead will wire it, on the session's stores."""
    stores = services.stores
    return UploadService(
        store=UploadStore(stores.postgres),
        objects=ObjectStore(stores.s3, stores.s3_bucket),
        engine=stores.engine,
        audit=services.audit,
        limits=limits or UploadLimits(),
        work_dir=services.settings.data_dir / "uploads",
    )


@asynccontextmanager
async def upload_server(
    services: Services, monkeypatch: pytest.MonkeyPatch, limits: UploadLimits | None = None
) -> AsyncIterator[tuple[GraphgateServer, UploadService]]:
    """A production-chain server whose UploadService is ours (with ``limits``)."""
    uploads = upload_service(services, limits)
    original = app.servicers

    def with_uploads(built: Services) -> dict[str, object]:
        return {**original(built), "graphgate.v1.UploadService": UploadServicer(uploads)}

    monkeypatch.setattr(app, "servicers", with_uploads)
    instance = GraphgateServer(services)
    await instance.start("127.0.0.1:0")
    try:
        yield instance, uploads
    finally:
        await instance.drain(pause=0, grace=1)
        await uploads.aclose()
        monkeypatch.setattr(app, "servicers", original)


@asynccontextmanager
async def upload_channel(
    services: Services, monkeypatch: pytest.MonkeyPatch, limits: UploadLimits | None = None
) -> AsyncIterator[aio.Channel]:
    """A channel to :func:`upload_server`."""
    async with upload_server(services, monkeypatch, limits) as (server, _):
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield channel


async def new_graph(
    channel: aio.Channel, schema: Sequence[str] = tuple(SCHEMA)
) -> tuple[Account, str]:
    """A fresh user and a graph they administer."""
    owner = await register(channel)
    created = await graph_pb2_grpc.GraphServiceStub(channel).CreateGraph(
        graph_pb2.CreateGraphRequest(name="uploads", schema=list(schema)),
        metadata=bearer(owner.token),
    )
    return owner, created.graph.graph_id


def csv_bytes(rows: Sequence[Sequence[object]], header: str = "id,name,score,amount") -> bytes:
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(rows: Sequence[Row]) -> bytes:
    ids, names, scores, amounts = (list(c) for c in zip(*rows, strict=True))
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": names,
            "score": pa.array(scores, pa.float64()),
            "amount": pa.array(amounts, pa.int64()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def json_records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "score": s, "amount": a} for i, n, s, a in rows]


async def post_file(
    created: upload_pb2.CreateUploadResponse, data: bytes, *, fields: dict[str, str] | None = None
) -> httpx.Response:
    """Send ``data`` to the presigned POST target, as a browser form would."""
    form = dict(created.form_fields) if fields is None else fields
    content_type = form.get("Content-Type", "application/octet-stream")
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            created.url, data=form, files={"file": ("upload", data, content_type)}
        )


async def create_upload(
    channel: aio.Channel,
    token: str,
    graph_id: str,
    data_format: str,
    size: int,
    *,
    table: str = "Item",
    file_name: str = "data.bin",
) -> upload_pb2.CreateUploadResponse:
    return await upload_pb2_grpc.UploadServiceStub(channel).CreateUpload(
        upload_pb2.CreateUploadRequest(
            graph_id=graph_id,
            table_name=table,
            file_name=file_name,
            format=FORMATS[data_format],
            size_bytes=size,
        ),
        metadata=bearer(token),
    )


async def uploaded(
    channel: aio.Channel, token: str, graph_id: str, data_format: str, data: bytes, **kw: Any
) -> upload_pb2.CreateUploadResponse:
    """Create an upload and store ``data`` through its presigned target."""
    created = await create_upload(channel, token, graph_id, data_format, len(data), **kw)
    answer = await post_file(created, data)
    assert answer.status_code in (200, 201, 204), answer.text
    return created


async def complete(
    channel: aio.Channel, token: str, graph_id: str, upload_id: str
) -> upload_pb2.Upload:
    reply = await upload_pb2_grpc.UploadServiceStub(channel).CompleteUpload(
        upload_pb2.CompleteUploadRequest(graph_id=graph_id, upload_id=upload_id),
        metadata=bearer(token),
    )
    return reply.upload


async def ingest(
    channel: aio.Channel, token: str, graph_id: str, upload_id: str
) -> list[upload_pb2.IngestUploadResponse]:
    call = upload_pb2_grpc.UploadServiceStub(channel).IngestUpload(
        upload_pb2.IngestUploadRequest(graph_id=graph_id, upload_id=upload_id),
        metadata=bearer(token),
        timeout=120,
    )
    return [message async for message in call]


async def get_upload(
    channel: aio.Channel, token: str, graph_id: str, upload_id: str
) -> upload_pb2.Upload:
    reply = await upload_pb2_grpc.UploadServiceStub(channel).GetUpload(
        upload_pb2.GetUploadRequest(graph_id=graph_id, upload_id=upload_id),
        metadata=bearer(token),
    )
    return reply.upload


async def query(channel: aio.Channel, token: str, graph_id: str, text: str) -> list[list[Any]]:
    """Rows of a read query, as Python values (ints exact)."""
    reply = await graph_pb2_grpc.GraphServiceStub(channel).ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(graph_id=graph_id, query=text), metadata=bearer(token)
    )
    return [[getattr(v, str(v.WhichOneof("kind"))) for v in row.values] for row in reply.rows]


async def load(
    channel: aio.Channel, token: str, graph_id: str, data_format: str, data: bytes
) -> tuple[upload_pb2.Upload, list[upload_pb2.IngestUploadResponse]]:
    """Upload, complete and ingest ``data``; the validated upload and the progress."""
    created = await uploaded(channel, token, graph_id, data_format, data)
    validated = await complete(channel, token, graph_id, created.upload.upload_id)
    assert validated.state == upload_pb2.UPLOAD_STATE_VALIDATED, validated.error
    return validated, await ingest(channel, token, graph_id, created.upload.upload_id)


def rows_with_extremes(count: int, start: int = 1) -> list[Row]:
    rows: list[Row] = [(INT64_MIN, "min", -1.5, INT64_MAX), (INT64_MAX, "max", 2.25, INT64_MIN)]
    rows += [(i, f"name {i}", i / 4, i * 1000) for i in range(start, start + count - 2)]
    return rows


async def assert_loaded(channel: aio.Channel, token: str, graph_id: str, rows: list[Row]) -> None:
    counted = await query(channel, token, graph_id, "MATCH (i:Item) RETURN count(*)")
    assert counted == [[len(rows)]]
    extremes = await query(
        channel,
        token,
        graph_id,
        f"MATCH (i:Item) WHERE i.id = {INT64_MIN} OR i.id = {INT64_MAX} "
        "RETURN i.id, i.name, i.score, i.amount ORDER BY i.id",
    )
    assert extremes == [[INT64_MIN, "min", -1.5, INT64_MAX], [INT64_MAX, "max", 2.25, INT64_MIN]]


# --- tests -----------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["csv", "parquet", "json", "ndjson"])
async def test_each_format_loads_end_to_end(
    services: Services, monkeypatch: pytest.MonkeyPatch, data_format: str
) -> None:
    rows = rows_with_extremes(250)
    data = {
        "csv": lambda: csv_bytes(rows),
        "parquet": lambda: parquet_bytes(rows),
        "json": lambda: json.dumps(json_records(rows)).encode(),
        "ndjson": lambda: b"".join(json.dumps(r).encode() + b"\n" for r in json_records(rows)),
    }[data_format]()
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        declared = "json" if data_format == "ndjson" else data_format
        validated, progress = await load(channel, owner.token, graph_id, declared, data)
        assert validated.row_count == len(rows)
        assert validated.size_bytes == len(data)
        final = progress[-1]
        assert final.state == upload_pb2.UPLOAD_STATE_INGESTED
        assert final.rows_loaded == len(rows)
        assert final.bytes_read == len(data)
        assert final.upload.state == upload_pb2.UPLOAD_STATE_INGESTED
        assert all(p.state == upload_pb2.UPLOAD_STATE_INGESTING for p in progress[:-1])
        read = [p.bytes_read for p in progress]
        assert read == sorted(read)
        assert len(progress) >= 3
        await assert_loaded(channel, owner.token, graph_id, rows)
        event = await wait_for_event(
            services.audit, "data_import", upload_id=validated.upload_id, outcome="success"
        )
        assert event["rows"] == len(rows)
        assert event["bytes"] == len(data)
        assert event["graph_id"] == graph_id


async def test_uploads_are_listed_newest_first_read_and_deleted(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        stub = upload_pb2_grpc.UploadServiceStub(channel)
        made = [
            await uploaded(channel, owner.token, graph_id, "csv", csv_bytes([(i, "n", 1.0, i)]))
            for i in range(3)
        ]
        ids = [m.upload.upload_id for m in reversed(made)]
        seen: list[str] = []
        token = ""
        while True:
            page = await stub.ListUploads(
                upload_pb2.ListUploadsRequest(graph_id=graph_id, page_size=2, page_token=token),
                metadata=bearer(owner.token),
            )
            seen += [u.upload_id for u in page.uploads]
            token = page.next_page_token
            if not token:
                break
        assert seen == ids
        first = await get_upload(channel, owner.token, graph_id, ids[0])
        assert first.state == upload_pb2.UPLOAD_STATE_PENDING
        assert first.file_name == "data.bin"
        assert first.table_name == "Item"
        await stub.DeleteUpload(
            upload_pb2.DeleteUploadRequest(graph_id=graph_id, upload_id=ids[0]),
            metadata=bearer(owner.token),
        )
        with pytest.raises(grpc.RpcError) as gone:
            await get_upload(channel, owner.token, graph_id, ids[0])
        assert code_of(gone.value) == grpc.StatusCode.NOT_FOUND
        s3 = services.stores.s3
        listed = s3.list_objects_v2(
            Bucket=services.stores.s3_bucket, Prefix=f"graphs/{graph_id}/uploads/"
        )
        keys = {item["Key"] for item in listed.get("Contents", [])}
        assert keys == {f"graphs/{graph_id}/uploads/{i}" for i in ids[1:]}


async def test_complete_before_the_file_is_stored_keeps_the_upload_pending(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        data = csv_bytes([(1, "a", 1.0, 1)])
        created = await create_upload(channel, owner.token, graph_id, "csv", len(data))
        upload_id = created.upload.upload_id
        with pytest.raises(grpc.RpcError) as early:
            await complete(channel, owner.token, graph_id, upload_id)
        assert code_of(early.value) == grpc.StatusCode.FAILED_PRECONDITION
        assert (await get_upload(channel, owner.token, graph_id, upload_id)).state == (
            upload_pb2.UPLOAD_STATE_PENDING
        )
        assert (await post_file(created, data)).status_code == 204
        validated = await complete(channel, owner.token, graph_id, upload_id)
        assert validated.state == upload_pb2.UPLOAD_STATE_VALIDATED
        # Completing again is harmless: the same upload comes back.
        again = await complete(channel, owner.token, graph_id, upload_id)
        assert again.state == upload_pb2.UPLOAD_STATE_VALIDATED


async def test_an_ingest_finishes_and_is_recorded_when_the_client_leaves(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = rows_with_extremes(20_000)
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        created = await uploaded(channel, owner.token, graph_id, "parquet", parquet_bytes(rows))
        upload_id = created.upload.upload_id
        await complete(channel, owner.token, graph_id, upload_id)
        call = upload_pb2_grpc.UploadServiceStub(channel).IngestUpload(
            upload_pb2.IngestUploadRequest(graph_id=graph_id, upload_id=upload_id),
            metadata=bearer(owner.token),
        )
        first = await call.read()
        assert isinstance(first, upload_pb2.IngestUploadResponse)
        assert first.state == upload_pb2.UPLOAD_STATE_INGESTING
        call.cancel()
        for _ in range(200):
            upload = await get_upload(channel, owner.token, graph_id, upload_id)
            if upload.state != upload_pb2.UPLOAD_STATE_INGESTING:
                break
            await asyncio.sleep(0.05)
        assert upload.state == upload_pb2.UPLOAD_STATE_INGESTED
        assert upload.row_count == len(rows)
        await assert_loaded(channel, owner.token, graph_id, rows)
