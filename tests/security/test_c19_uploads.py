"""C19 uploads, through a real channel, real presigned POSTs and the embedded S3."""

from __future__ import annotations

import asyncio
import re
import stat
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from graphgate.server.assembly import Services
from graphgate.server.services.uploads import UploadLimits
from graphgate.v1 import common_pb2, graph_pb2, graph_pb2_grpc, upload_pb2, upload_pb2_grpc
from tests.e2e.test_uploads import (
    complete,
    create_upload,
    csv_bytes,
    get_upload,
    ingest,
    new_graph,
    parquet_bytes,
    post_file,
    query,
    rows_with_extremes,
    upload_channel,
    uploaded,
)
from tests.support import bearer, code_of, reason_of, register, wait_for_event

pytestmark = pytest.mark.security

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
MIB = 2**20


def _work_files(services: Services) -> list[str]:
    work = services.settings.data_dir / "uploads"
    return sorted(p.name for p in work.iterdir()) if work.exists() else []


async def test_c19_content_decides_the_format_not_the_name(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: CSV bytes declared Parquet, a PNG declared CSV, text declared JSON and a
    CSV whose header is not the table's end FAILED with a reason; none can be ingested."""
    good_csv = csv_bytes(rows_with_extremes(10))
    cases = [
        ("parquet", good_csv, "not Parquet"),
        ("csv", PNG, "PNG"),
        ("json", good_csv, "not JSON"),
        ("json", b'[{"id": 1, "name": "a", "score": 1.0, "amount": 2}, 7]', "not a JSON object"),
        ("csv", csv_bytes([(1, "a", 1.0, 2)], header="name,id,score,amount"), "in this order"),
        ("csv", csv_bytes([("x", "a", 1.0, 2)]), "column id: not a valid INT64 value"),
        ("csv", csv_bytes([(1, "a", "high", 2)]), "column score: not a valid DOUBLE value"),
        (
            "json",
            b'[{"id": 9223372036854775808, "name": "a", "score": 1.0, "amount": 2}]',
            "column id: not a valid INT64 value",
        ),
        ("json", b'{"name": "a", "id": 1, "score": 1.0, "amount": 2}\n', "in this order"),
        ("json", b'{"id": 1, "name": "a", "score": true, "amount": 2}\n', "column score"),
        ("parquet", parquet_bytes(rows_with_extremes(5))[:-4] + b"XXXX", "footer"),
    ]
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        for index, (declared, data, why) in enumerate(cases):
            created = await uploaded(
                channel, owner.token, graph_id, declared, data, file_name="data.csv"
            )
            upload_id = created.upload.upload_id
            result = await complete(channel, owner.token, graph_id, upload_id)
            assert result.state == upload_pb2.UPLOAD_STATE_FAILED, (declared, why)
            assert why in result.error, (result.error, why)
            if index < 3:  # ingest is rate-limited (10 a minute): a few show it
                with pytest.raises(grpc.RpcError) as refused:
                    await ingest(channel, owner.token, graph_id, upload_id)
                assert code_of(refused.value) == grpc.StatusCode.FAILED_PRECONDITION
                assert reason_of(refused.value) == "UPLOAD_NOT_VALIDATED"
        assert await query(channel, owner.token, graph_id, "MATCH (i:Item) RETURN count(*)") == [
            [0]
        ]


async def test_c19_the_upload_policy_itself_enforces_size_type_and_encryption(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19/C11: S3 refuses a body larger or smaller than declared, another content
    type, and a form without server-side encryption; what it stores is encrypted."""
    data = csv_bytes(rows_with_extremes(20))
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        created = await create_upload(channel, owner.token, graph_id, "csv", len(data))
        assert created.method == "POST"
        too_large = await post_file(created, data + b"9,x,1.0,9\n")
        assert 400 <= too_large.status_code < 500
        assert "EntityTooLarge" in too_large.text
        too_small = await post_file(created, data[:-5])
        assert 400 <= too_small.status_code < 500
        other_type = {**created.form_fields, "Content-Type": "image/png"}
        assert (await post_file(created, data, fields=other_type)).status_code == 403
        unencrypted = {
            k: v for k, v in created.form_fields.items() if k != "x-amz-server-side-encryption"
        }
        assert (await post_file(created, data, fields=unencrypted)).status_code == 403
        other_key = {**created.form_fields, "key": f"graphs/{graph_id}/uploads/{uuid.uuid4()}"}
        assert (await post_file(created, data, fields=other_key)).status_code == 403
        s3, bucket = services.stores.s3, services.stores.s3_bucket
        with pytest.raises(s3.exceptions.ClientError):
            s3.head_object(Bucket=bucket, Key=created.form_fields["key"])
        # The exact file goes through, encrypted at rest.
        assert (await post_file(created, data)).status_code == 204
        head = s3.head_object(Bucket=bucket, Key=created.form_fields["key"])
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == len(data)
        validated = await complete(channel, owner.token, graph_id, created.upload.upload_id)
        assert validated.state == upload_pb2.UPLOAD_STATE_VALIDATED


async def test_c19_create_refuses_a_file_over_the_tier_limit(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: a declared size above the caller's tier per-file limit (100 MiB) is refused
    before any target is signed."""
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        with pytest.raises(grpc.RpcError) as refused:
            await create_upload(channel, owner.token, graph_id, "csv", 100 * MIB + 1)
        assert code_of(refused.value) == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(refused.value) == "FILE_TOO_LARGE"
        accepted = await create_upload(channel, owner.token, graph_id, "csv", 100 * MIB)
        assert accepted.upload.state == upload_pb2.UPLOAD_STATE_PENDING
        with pytest.raises(grpc.RpcError) as unknown_table:
            await create_upload(channel, owner.token, graph_id, "csv", 10, table="Nope")
        assert code_of(unknown_table.value) == grpc.StatusCode.NOT_FOUND


async def test_c19_storage_cap_and_row_limit(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: the graph's stored uploads may not exceed its tier's cap (deleting frees
    space); a Parquet file whose metadata counts too many rows, and a CSV with too
    many rows, fail validation."""
    limits = UploadLimits(storage_cap_bytes={"free": 10_000}, max_rows_per_file=5)
    async with upload_channel(services, monkeypatch, limits) as channel:
        owner, graph_id = await new_graph(channel)
        stub = upload_pb2_grpc.UploadServiceStub(channel)
        first = await create_upload(channel, owner.token, graph_id, "csv", 6_000)
        with pytest.raises(grpc.RpcError) as capped:
            await create_upload(channel, owner.token, graph_id, "csv", 4_001)
        assert code_of(capped.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(capped.value) == "STORAGE_CAP_EXCEEDED"
        await wait_for_event(services.audit, "data_import", reason="STORAGE_CAP_EXCEEDED")
        await stub.DeleteUpload(
            upload_pb2.DeleteUploadRequest(graph_id=graph_id, upload_id=first.upload.upload_id),
            metadata=bearer(owner.token),
        )
        too_many = rows_with_extremes(6)
        for declared, data in (("parquet", parquet_bytes(too_many)), ("csv", csv_bytes(too_many))):
            created = await uploaded(channel, owner.token, graph_id, declared, data)
            result = await complete(channel, owner.token, graph_id, created.upload.upload_id)
            assert result.state == upload_pb2.UPLOAD_STATE_FAILED
            assert "row limit" in result.error
        fits = await uploaded(
            channel, owner.token, graph_id, "parquet", parquet_bytes(too_many[:5])
        )
        result = await complete(channel, owner.token, graph_id, fits.upload.upload_id)
        assert result.state == upload_pb2.UPLOAD_STATE_VALIDATED
        assert result.row_count == 5


async def test_c19_the_object_ingested_is_the_object_validated(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: an object overwritten after CompleteUpload (directly in S3, or by another
    POST to the still-valid target) is refused at ingest; nothing is loaded."""
    s3, bucket = services.stores.s3, services.stores.s3_bucket
    good = csv_bytes(rows_with_extremes(50))
    evil = good.replace(b"name 3,", b"evil 3,")
    assert len(evil) == len(good)
    assert evil != good
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        for swap in ("boto3", "presigned"):
            created = await uploaded(channel, owner.token, graph_id, "csv", good)
            upload_id = created.upload.upload_id
            validated = await complete(channel, owner.token, graph_id, upload_id)
            assert validated.state == upload_pb2.UPLOAD_STATE_VALIDATED
            if swap == "boto3":
                s3.put_object(
                    Bucket=bucket,
                    Key=created.form_fields["key"],
                    Body=evil,
                    ContentType="text/csv",
                    ServerSideEncryption="AES256",
                )
            else:
                assert (await post_file(created, evil)).status_code == 204
            with pytest.raises(grpc.RpcError) as refused:
                await ingest(channel, owner.token, graph_id, upload_id)
            assert code_of(refused.value) == grpc.StatusCode.FAILED_PRECONDITION
            assert refused.value.details() == "object changed after validation"
            failed = await get_upload(channel, owner.token, graph_id, upload_id)
            assert failed.state == upload_pb2.UPLOAD_STATE_FAILED
            assert failed.error == "object changed after validation"
            await wait_for_event(
                services.audit, "data_import", upload_id=upload_id, reason="OBJECT_CHANGED"
            )
        counted = await query(channel, owner.token, graph_id, "MATCH (i:Item) RETURN count(*)")
        assert counted == [[0]]
        assert _work_files(services) == []


async def test_c19_an_expired_target_refuses_the_file(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: the presigned target is time-limited (here 1 s): S3 answers 403 afterwards."""
    data = csv_bytes(rows_with_extremes(5))
    async with upload_channel(services, monkeypatch, UploadLimits(url_expiry_seconds=1)) as channel:
        owner, graph_id = await new_graph(channel)
        created = await create_upload(channel, owner.token, graph_id, "csv", len(data))
        assert created.expires_at.seconds - created.upload.created_at.seconds <= 2
        await asyncio.sleep(2.2)
        late = await post_file(created, data)
        assert late.status_code == 403
        assert "expired" in late.text.lower()


@pytest.mark.parametrize("failure", ["duplicate primary key", "bad INT64"])
async def test_c19_a_file_failing_half_way_leaves_the_graph_unchanged(
    services: Services, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """C19: ingest is all or nothing: row 5000 of 6000 fails in the engine (after
    validation sampled the first rows), no row of the file stays, the upload is
    FAILED with the engine's (scrubbed) reason and the local copy is gone.

    The table already has a row: LadybugDB 0.22 corrupts its heap when such a
    COPY fails on a duplicate key, so the worker refuses repeated keys first.
    """
    duplicate = failure == "duplicate primary key"
    rows: list[list[object]] = [[i, f"n{i}", 1.0, i] for i in range(100, 6100)]
    rows[4999][0 if duplicate else 3] = 100 if duplicate else "12x"
    data = csv_bytes(rows)
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        await graph_pb2_grpc.GraphServiceStub(channel).ExecuteQuery(
            graph_pb2.ExecuteQueryRequest(
                graph_id=graph_id, query="CREATE (:Item {id: 1, name: 'before', amount: 7})"
            ),
            metadata=bearer(owner.token),
        )
        created = await uploaded(channel, owner.token, graph_id, "csv", data)
        upload_id = created.upload.upload_id
        validated = await complete(channel, owner.token, graph_id, upload_id)
        assert validated.state == upload_pb2.UPLOAD_STATE_VALIDATED
        assert validated.row_count == 6000
        with pytest.raises(grpc.RpcError) as failed:
            await ingest(channel, owner.token, graph_id, upload_id)
        assert code_of(failed.value) == grpc.StatusCode.INVALID_ARGUMENT
        if duplicate:
            assert reason_of(failed.value) == "DUPLICATE_PRIMARY_KEY"
        details = failed.value.details() or ""
        assert str(services.settings.data_dir) not in details
        assert "ingest-" not in details
        rows_now = await query(channel, owner.token, graph_id, "MATCH (i:Item) RETURN i.name")
        assert rows_now == [["before"]]
        upload = await get_upload(channel, owner.token, graph_id, upload_id)
        assert upload.state == upload_pb2.UPLOAD_STATE_FAILED
        assert upload.error
        assert _work_files(services) == []
        event = await wait_for_event(
            services.audit, "data_import", upload_id=upload_id, outcome="failed"
        )
        assert event["rows"] == 0


async def test_c19_one_ingest_per_upload(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: two concurrent ingests of one upload: one loads, the other is refused;
    an ingested upload cannot be ingested again."""
    data = parquet_bytes(rows_with_extremes(2000))
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        created = await uploaded(channel, owner.token, graph_id, "parquet", data)
        upload_id = created.upload.upload_id
        await complete(channel, owner.token, graph_id, upload_id)
        outcomes = await asyncio.gather(
            ingest(channel, owner.token, graph_id, upload_id),
            ingest(channel, owner.token, graph_id, upload_id),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, grpc.RpcError)]
        loaded = [o for o in outcomes if isinstance(o, list)]
        assert len(refused) == 1
        assert len(loaded) == 1
        assert code_of(refused[0]) == grpc.StatusCode.FAILED_PRECONDITION
        assert loaded[0][-1].rows_loaded == 2000
        with pytest.raises(grpc.RpcError) as again:
            await ingest(channel, owner.token, graph_id, upload_id)
        assert code_of(again.value) == grpc.StatusCode.FAILED_PRECONDITION
        counted = await query(channel, owner.token, graph_id, "MATCH (i:Item) RETURN count(*)")
        assert counted == [[2000]]


def _calls(graph_id: str, upload_id: str) -> list[tuple[str, object]]:
    ids = {"graph_id": graph_id, "upload_id": upload_id}
    return [
        ("GetUpload", upload_pb2.GetUploadRequest(**ids)),
        ("CompleteUpload", upload_pb2.CompleteUploadRequest(**ids)),
        ("IngestUpload", upload_pb2.IngestUploadRequest(**ids)),
        ("DeleteUpload", upload_pb2.DeleteUploadRequest(**ids)),
    ]


async def _outcome(
    stub: upload_pb2_grpc.UploadServiceStub, name: str, request: object, token: str
) -> tuple[str, str, str]:
    try:
        answer = getattr(stub, name)(request, metadata=bearer(token))
        if name == "IngestUpload":
            _ = [message async for message in answer]
        else:
            await answer
    except grpc.RpcError as error:
        return code_of(error).name, error.details() or "", reason_of(error)
    return "OK", "", ""


async def test_c19_an_upload_of_another_graph_is_not_found(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19/C9: another graph's upload id, used with one's own graph, answers exactly
    like an unknown id; the victim's upload is untouched and absent from lists."""
    async with upload_channel(services, monkeypatch) as channel:
        victim, victim_graph = await new_graph(channel)
        created = await uploaded(
            channel, victim.token, victim_graph, "csv", csv_bytes(rows_with_extremes(5))
        )
        victim_upload = created.upload.upload_id
        attacker, attacker_graph = await new_graph(channel)
        stub = upload_pb2_grpc.UploadServiceStub(channel)
        unknown = str(uuid.uuid4())
        for (name, foreign), (_, missing) in zip(
            _calls(attacker_graph, victim_upload), _calls(attacker_graph, unknown), strict=True
        ):
            seen = await _outcome(stub, name, foreign, attacker.token)
            expected = await _outcome(stub, name, missing, attacker.token)
            assert seen == expected == ("NOT_FOUND", "upload not found", "UPLOAD_NOT_FOUND"), name
        # And through the victim's graph: the chain refuses non-members the same way.
        for name, request in _calls(victim_graph, victim_upload):
            code, details, _ = await _outcome(stub, name, request, attacker.token)
            assert (code, details) == ("NOT_FOUND", "graph not found"), name
        listed = await stub.ListUploads(
            upload_pb2.ListUploadsRequest(graph_id=attacker_graph), metadata=bearer(attacker.token)
        )
        assert list(listed.uploads) == []
        intact = await get_upload(channel, victim.token, victim_graph, victim_upload)
        assert intact.state == upload_pb2.UPLOAD_STATE_PENDING


async def test_c19_viewers_cannot_upload(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19/C9: uploads are for members and admins; a viewer is refused by the chain."""
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        viewer = await register(channel)
        member = await register(channel)
        graphs = graph_pb2_grpc.GraphServiceStub(channel)
        for account, role in ((viewer, common_pb2.ROLE_VIEWER), (member, common_pb2.ROLE_MEMBER)):
            await graphs.AddMember(
                graph_pb2.AddMemberRequest(graph_id=graph_id, email=account.email, role=role),
                metadata=bearer(owner.token),
            )
        with pytest.raises(grpc.RpcError) as denied:
            await create_upload(channel, viewer.token, graph_id, "csv", 10)
        assert code_of(denied.value) == grpc.StatusCode.PERMISSION_DENIED
        created = await create_upload(channel, member.token, graph_id, "csv", 10)
        stub = upload_pb2_grpc.UploadServiceStub(channel)
        for name, request in _calls(graph_id, created.upload.upload_id):
            code, _, _ = await _outcome(stub, name, request, viewer.token)
            assert code == "PERMISSION_DENIED", name
        with pytest.raises(grpc.RpcError) as listing:
            await stub.ListUploads(
                upload_pb2.ListUploadsRequest(graph_id=graph_id), metadata=bearer(viewer.token)
            )
        assert code_of(listing.value) == grpc.StatusCode.PERMISSION_DENIED


async def test_c19_object_keys_hold_ids_only(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: the object key is graphs/{graph_id}/uploads/{upload_id}, whatever the file
    name says; the name is kept for display only."""
    name = "..%2F..%2Fetc passwd; DROP TABLE uploads.csv"
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        data = csv_bytes(rows_with_extremes(3))
        created = await uploaded(channel, owner.token, graph_id, "csv", data, file_name=name)
        upload_id = created.upload.upload_id
        key = f"graphs/{graph_id}/uploads/{upload_id}"
        assert created.form_fields["key"] == key
        assert str(uuid.UUID(upload_id)) == upload_id
        signed = " ".join([created.url, *created.form_fields.keys()])
        assert "passwd" not in signed
        assert "DROP" not in signed
        listed = services.stores.s3.list_objects_v2(
            Bucket=services.stores.s3_bucket, Prefix=f"graphs/{graph_id}/"
        )
        assert [item["Key"] for item in listed["Contents"]] == [key]
        assert (await get_upload(channel, owner.token, graph_id, upload_id)).file_name == name


def _modes(path: Path) -> tuple[int, int]:
    return stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(path.parent.stat().st_mode)


async def test_c19_the_worker_loads_a_private_server_named_copy(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C19: the file the graph worker loads is a 0600 copy in a 0700 directory inside
    the data directory, named from ids only, and it is gone after the load."""
    engine = services.stores.engine
    original = engine.bulk_load
    seen: list[tuple[Path, int, int]] = []

    async def spying(graph_id: str, table: str, path: Path, file_format: str, **kw: Any) -> int:
        file_mode, dir_mode = await asyncio.to_thread(_modes, path)
        seen.append((path, file_mode, dir_mode))
        return await original(graph_id, table, path, file_format, **kw)

    monkeypatch.setattr(engine, "bulk_load", spying)
    async with upload_channel(services, monkeypatch) as channel:
        owner, graph_id = await new_graph(channel)
        data = csv_bytes(rows_with_extremes(10))
        created = await uploaded(
            channel, owner.token, graph_id, "csv", data, file_name="'; ATTACH 'x.csv"
        )
        upload_id = created.upload.upload_id
        await complete(channel, owner.token, graph_id, upload_id)
        await ingest(channel, owner.token, graph_id, upload_id)
    [(path, file_mode, dir_mode)] = seen
    assert path.is_relative_to(engine.data_dir)
    assert file_mode == 0o600
    assert dir_mode == 0o700
    assert re.fullmatch(rf"ingest-{upload_id}-[A-Za-z0-9_]+", path.name)
    assert not path.exists()
