"""C11 encrypted backups (and their C9 isolation), through a real channel.

Real PostgreSQL, SeaweedFS and graph workers. Each server here is the
production chain with the backup RPCs served by :class:`BackupService` under
keys generated for the test: ``app.servicers`` is patched so that the
GraphService servicer uses a :class:`BackupService` built here, whether or
not GraphServicer already serves the backup RPCs itself.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from cryptography.fernet import Fernet, MultiFernet
from grpc import aio

from graphgate.server import app
from graphgate.server.app import GraphgateServer
from graphgate.server.assembly import Services
from graphgate.server.audit import AuditLog
from graphgate.server.handlers.backups import BackupHandlers
from graphgate.server.handlers.graphs import GraphServicer
from graphgate.server.lifecycle import Stores
from graphgate.server.services.backup_format import MAGIC, binding, unseal
from graphgate.server.services.backups import BackupLimits, BackupService
from graphgate.server.services.graphs import GraphService
from graphgate.server.settings import Settings
from graphgate.server.stores.backup_objects import BackupObjects
from graphgate.server.stores.backups import BackupStore
from graphgate.v1 import common_pb2, graph_pb2, graph_pb2_grpc
from tests.conftest import custom_server
from tests.support import Account, bearer, code_of, reason_of, register, wait_for_event

pytestmark = pytest.mark.security

SCHEMA = [
    "CREATE NODE TABLE Person(id INT64 PRIMARY KEY, name STRING, tags STRING[], "
    "born DATE, score DOUBLE)",
    "CREATE NODE TABLE City(name STRING PRIMARY KEY)",
    "CREATE REL TABLE LIVES_IN(FROM Person TO City, since INT64)",
]
#: Read-back queries whose answers must survive a backup and restore unchanged.
PROBES = [
    "MATCH (p:Person) RETURN p.id, p.name, p.tags, p.born, p.score ORDER BY p.id",
    "MATCH (c:City) RETURN c.name ORDER BY c.name",
    "MATCH (p:Person)-[l:LIVES_IN]->(c:City) RETURN p.id, l.since, c.name ORDER BY p.id",
]
#: Small frames, so that even a small graph's backup has several of them.
CHUNK_BYTES = 2048


class GraphWithBackups(GraphServicer, BackupHandlers):
    """GraphServicer with the backup RPCs mixed in, until GraphServicer has them itself."""

    def __init__(self, graphs: GraphService, backups: BackupService) -> None:
        GraphServicer.__init__(self, graphs)
        BackupHandlers.__init__(self, backups)


def _graph_servicer(graphs: GraphService, backups: BackupService) -> object:
    if issubclass(GraphServicer, BackupHandlers):  # wired: GraphServicer(graphs, backups)
        servicer: object = cast(Any, GraphServicer)(graphs, backups)
        return servicer
    return GraphWithBackups(graphs, backups)


@dataclass
class Node:
    """A server serving backups, its service and a stub on a channel to it."""

    server: GraphgateServer
    backups: BackupService
    stub: graph_pb2_grpc.GraphServiceStub
    channel: aio.Channel


def _backup_service(services: Services, keys: Sequence[str]) -> BackupService:
    stores = services.stores
    return BackupService(
        store=BackupStore(stores.postgres),
        objects=BackupObjects(stores.s3, stores.s3_bucket),
        engine=stores.engine,
        keys=keys,
        audit=services.audit,
        work_dir=stores.engine.data_dir / "backup-work",
        limits=BackupLimits(chunk_bytes=CHUNK_BYTES),
    )


@asynccontextmanager
async def backup_node(
    settings: Settings, stores: Stores, audit_log: AuditLog, keys: Sequence[str]
) -> AsyncIterator[Node]:
    """A server whose backups use ``keys`` (newest first)."""
    built: dict[str, BackupService] = {}
    original: Callable[[Services], dict[str, object]] = app.servicers

    def servicers(services: Services) -> dict[str, object]:
        backups = built["backups"] = _backup_service(services, keys)
        found = original(services)
        found["graphgate.v1.GraphService"] = _graph_servicer(services.graphs, backups)
        return found

    # Every test user here makes more backup calls than the default hourly window.
    limits = f"{settings.rate_limits},backups=100000/3600"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app, "servicers", servicers)
        async with (
            custom_server(settings, stores, audit_log, rate_limits=limits) as (server, _),
            aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
        ):
            yield Node(server, built["backups"], graph_pb2_grpc.GraphServiceStub(channel), channel)


@pytest.fixture(scope="module")
def old_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="module")
async def node(
    settings: Settings, stores: Stores, audit_log: AuditLog, old_key: str
) -> AsyncIterator[Node]:
    async with backup_node(settings, stores, audit_log, [old_key]) as opened:
        yield opened


@dataclass
class Tenant:
    owner: Account
    graph_id: str
    canary: str

    @property
    def auth(self) -> list[tuple[str, str]]:
        return bearer(self.owner.token)


async def _run(
    node: Node, tenant: Tenant, query: str, **values: str
) -> graph_pb2.ExecuteQueryResponse:
    return await node.stub.ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(
            graph_id=tenant.graph_id,
            query=query,
            parameters={k: common_pb2.Value(string_value=v) for k, v in values.items()},
        ),
        metadata=tenant.auth,
    )


async def _tenant(node: Node) -> Tenant:
    owner = await register(node.channel)
    created = await node.stub.CreateGraph(
        graph_pb2.CreateGraphRequest(name="backed-up", schema=SCHEMA), metadata=bearer(owner.token)
    )
    tenant = Tenant(owner, created.graph.graph_id, f"zebra-canary-{secrets.token_hex(8)}")
    await _run(
        node,
        tenant,
        "UNWIND range(1, 40) AS i CREATE (:Person {id: i, name: $canary + '-' + cast(i, 'STRING'), "
        "tags: ['t', cast(i % 3, 'STRING')], born: date('1990-01-01'), score: i / 7.0})",
        canary=tenant.canary,
    )
    await _run(node, tenant, "UNWIND ['Lyon', 'Oslo', $c] AS n CREATE (:City {name: n})", c="Kyiv")
    await _run(
        node,
        tenant,
        "MATCH (p:Person), (c:City) WHERE p.id % 3 = 0 AND c.name = 'Oslo' "
        "CREATE (p)-[:LIVES_IN {since: p.id + 2000}]->(c)",
    )
    return tenant


async def _snapshot(node: Node, tenant: Tenant) -> list[tuple[Any, ...]]:
    """What the graph answers: each probe's columns and rows, and the schema."""
    answers: list[tuple[Any, ...]] = []
    for query in PROBES:
        try:
            reply = await _run(node, tenant, query)
        except grpc.RpcError as error:  # e.g. a table dropped since
            answers.append((code_of(error).name, error.details()))
            continue
        answers.append((list(reply.columns), list(reply.rows)))
    schema = await node.stub.GetSchema(
        graph_pb2.GetSchemaRequest(graph_id=tenant.graph_id), metadata=tenant.auth
    )
    answers.append((list(schema.tables),))
    return answers


async def _backup(node: Node, tenant: Tenant) -> graph_pb2.Backup:
    reply = await node.stub.CreateBackup(
        graph_pb2.CreateBackupRequest(graph_id=tenant.graph_id), metadata=tenant.auth
    )
    return reply.backup


async def _restore(node: Node, tenant: Tenant, backup_id: str) -> graph_pb2.Backup:
    reply = await node.stub.RestoreBackup(
        graph_pb2.RestoreBackupRequest(graph_id=tenant.graph_id, backup_id=backup_id),
        metadata=tenant.auth,
    )
    return reply.backup


async def _failure(call: Any) -> tuple[str, str, str]:
    try:
        await call
    except grpc.RpcError as error:
        return code_of(error).name, error.details() or "", reason_of(error)
    return "OK", "", ""


def _object_key(backup: graph_pb2.Backup) -> str:
    return f"graphs/{backup.graph_id}/backups/{backup.backup_id}"


async def _read_object(stores: Stores, key: str) -> tuple[bytes, dict[str, Any]]:
    def read() -> tuple[bytes, dict[str, Any]]:
        answer = stores.s3.get_object(Bucket=stores.s3_bucket, Key=key)
        return answer["Body"].read(), answer

    return await asyncio.to_thread(read)


async def _write_object(stores: Stores, key: str, body: bytes) -> None:
    await asyncio.to_thread(
        stores.s3.put_object,
        Bucket=stores.s3_bucket,
        Key=key,
        Body=body,
        ServerSideEncryption="AES256",
    )


def _frames(body: bytes) -> list[bytes]:
    """The object's frames, length prefixes included."""
    frames, at = [], len(MAGIC)
    while at < len(body):
        end = at + 4 + int.from_bytes(body[at : at + 4], "big")
        frames.append(body[at:end])
        at = end
    return frames


async def test_c11_backup_then_restore_gives_identical_results(node: Node) -> None:
    """C11: backup, delete the data (and a table), restore: every probe answers
    exactly as before, the schema included, and the graph takes writes again."""
    tenant = await _tenant(node)
    before = await _snapshot(node, tenant)
    backup = await _backup(node, tenant)
    assert uuid.UUID(backup.backup_id)
    assert backup.graph_id == tenant.graph_id
    assert backup.size_bytes > 0
    assert len(backup.sha256) == 64
    assert backup.created_at.seconds > 0

    await _run(node, tenant, "MATCH (n) DETACH DELETE n")
    await node.stub.UpdateSchema(
        graph_pb2.UpdateSchemaRequest(graph_id=tenant.graph_id, statements=["DROP TABLE LIVES_IN"]),
        metadata=tenant.auth,
    )
    assert await _snapshot(node, tenant) != before

    restored = await _restore(node, tenant, backup.backup_id)
    assert restored == backup
    assert await _snapshot(node, tenant) == before
    await _run(node, tenant, "CREATE (:City {name: 'Quito'})")
    count = await _run(node, tenant, "MATCH (c:City) RETURN count(*)")
    assert count.rows[0].values[0].int_value == 4

    listed = await node.stub.ListBackups(
        graph_pb2.ListBackupsRequest(graph_id=tenant.graph_id), metadata=tenant.auth
    )
    assert list(listed.backups) == [backup]
    assert not listed.next_page_token


async def test_c11_stored_object_is_ciphertext_with_server_side_encryption(
    node: Node, stores: Stores, old_key: str
) -> None:
    """C11: the object sits under an ids-only key, written with SSE-S3; its bytes
    hold no trace of the data, though the plaintext it decrypts to does."""
    tenant = await _tenant(node)
    backup = await _backup(node, tenant)
    body, answer = await _read_object(stores, _object_key(backup))
    assert answer.get("ServerSideEncryption") == "AES256"
    assert len(body) == backup.size_bytes
    assert body.startswith(MAGIC)
    assert len(_frames(body)) > 1
    canary = tenant.canary.encode()
    # Each needle is long or holds a byte base64 never emits: the tokens are base64
    # text, so a short word such as a city name turns up in them by chance.
    for needle in (canary, canary.hex().encode(), b"zebra-canary", b"ustar\x00"):
        assert needle not in body
    # The search is meaningful: the same bytes, opened with the key, hold the canary.
    plaintext = io.BytesIO()
    owner = binding(uuid.UUID(backup.graph_id), uuid.UUID(backup.backup_id))
    digest = unseal(io.BytesIO(body), plaintext, MultiFernet([Fernet(old_key)]), owner)
    assert digest == backup.sha256
    assert canary in plaintext.getvalue()
    assert b"ustar\x00" in plaintext.getvalue()


async def test_c11_tampered_backup_is_refused_and_graph_unchanged(
    node: Node, stores: Stores, audit_log: AuditLog
) -> None:
    """C11: a flipped byte, a dropped, swapped or foreign frame, a truncated
    object or a wrong recorded SHA-256 is refused, and the graph keeps its data."""
    tenant = await _tenant(node)
    backup = await _backup(node, tenant)
    other = await _backup(node, tenant)
    key = _object_key(backup)
    original, _ = await _read_object(stores, key)
    foreign, _ = await _read_object(stores, _object_key(other))
    await _run(node, tenant, "CREATE (:City {name: 'Added after the backup'})")
    current = await _snapshot(node, tenant)
    frames = _frames(original)
    middle = len(MAGIC) + 4 + len(frames[0]) // 2
    flipped = bytearray(original)
    flipped[middle] ^= 0x01
    tamperings = {
        "flipped byte": bytes(flipped),
        "last frame dropped": MAGIC + b"".join(frames[:-1]),
        "frames swapped": MAGIC + frames[1] + frames[0] + b"".join(frames[2:]),
        "frame of another backup": MAGIC + _frames(foreign)[0] + b"".join(frames[1:]),
        "truncated": original[:-10],
        "bytes appended": original + b"\x00",
    }
    try:
        for name, body in tamperings.items():
            await _write_object(stores, key, body)
            outcome = await _failure(_restore(node, tenant, backup.backup_id))
            assert outcome[::2] == ("FAILED_PRECONDITION", "BACKUP_INTEGRITY"), name
            assert await _snapshot(node, tenant) == current, name
    finally:
        await _write_object(stores, key, original)
    await wait_for_event(
        audit_log, "suspicious_activity", reason="BACKUP_INTEGRITY", backup_id=backup.backup_id
    )

    # The recorded digest is checked too (intact object, altered record).
    await stores.postgres.execute(
        "UPDATE backups SET sha256 = $2 WHERE backup_id = $1",
        uuid.UUID(backup.backup_id),
        "0" * 64,
    )
    outcome = await _failure(_restore(node, tenant, backup.backup_id))
    assert outcome[2] == "BACKUP_INTEGRITY"
    assert await _snapshot(node, tenant) == current
    # The untouched backup still restores.
    await _restore(node, tenant, other.backup_id)
    assert await _snapshot(node, tenant) != current


async def test_c11_c9_backup_of_another_graph_is_not_found_like_an_unknown_one(
    node: Node,
) -> None:
    """C9/C11: another graph's backup id answers exactly like an unknown one and
    changes nothing; another tenant cannot list, create or restore at all; a
    member (not admin) may not back up or restore."""
    victim = await _tenant(node)
    attacker = await _tenant(node)
    victim_backup = await _backup(node, victim)
    victim_state = await _snapshot(node, victim)
    attacker_state = await _snapshot(node, attacker)

    foreign = await _failure(_restore(node, attacker, victim_backup.backup_id))
    unknown = await _failure(_restore(node, attacker, str(uuid.uuid4())))
    assert foreign == unknown == ("NOT_FOUND", "backup not found", "BACKUP_NOT_FOUND")

    posing = Tenant(attacker.owner, victim.graph_id, "")
    for call in (
        _restore(node, posing, victim_backup.backup_id),
        _backup(node, posing),
        node.stub.ListBackups(
            graph_pb2.ListBackupsRequest(graph_id=victim.graph_id), metadata=posing.auth
        ),
    ):
        assert (await _failure(call))[:2] == ("NOT_FOUND", "graph not found")
    listed = await node.stub.ListBackups(
        graph_pb2.ListBackupsRequest(graph_id=attacker.graph_id), metadata=attacker.auth
    )
    assert list(listed.backups) == []

    member = await register(node.channel)
    await node.stub.AddMember(
        graph_pb2.AddMemberRequest(
            graph_id=victim.graph_id, email=member.email, role=common_pb2.ROLE_MEMBER
        ),
        metadata=victim.auth,
    )
    as_member = Tenant(member, victim.graph_id, "")
    assert (await _failure(_backup(node, as_member)))[0] == "PERMISSION_DENIED"
    assert (await _failure(_restore(node, as_member, victim_backup.backup_id)))[
        0
    ] == "PERMISSION_DENIED"

    assert await _snapshot(node, victim) == victim_state
    assert await _snapshot(node, attacker) == attacker_state


async def test_c11_key_rotation_old_backups_restore_and_reencrypt(
    node: Node,
    settings: Settings,
    stores: Stores,
    audit_log: AuditLog,
    old_key: str,
    new_key: str,
) -> None:
    """C11: a server with keys "new,old" restores a backup made under "old" and
    writes new ones under "new"; after re-encryption, "new" alone suffices."""
    tenant = await _tenant(node)
    before = await _snapshot(node, tenant)
    old_backup = await _backup(node, tenant)
    await _run(node, tenant, "MATCH (n) DETACH DELETE n")

    async with backup_node(settings, stores, audit_log, [new_key, old_key]) as rotated:
        await _restore(rotated, tenant, old_backup.backup_id)
        assert await _snapshot(rotated, tenant) == before
        new_backup = await _backup(rotated, tenant)

        async with backup_node(settings, stores, audit_log, [new_key]) as new_only:
            assert (await _failure(_restore(new_only, tenant, old_backup.backup_id)))[
                2
            ] == "BACKUP_INTEGRITY"
            await _restore(new_only, tenant, new_backup.backup_id)

            record = await rotated.backups.reencrypt(tenant.graph_id, old_backup.backup_id)
            assert record.sha256 == old_backup.sha256
            await _run(new_only, tenant, "MATCH (n) DETACH DELETE n")
            await _restore(new_only, tenant, old_backup.backup_id)
            assert await _snapshot(new_only, tenant) == before
    # The node that only knows the old key can no longer read it.
    outcome = await _failure(_restore(node, tenant, old_backup.backup_id))
    assert outcome[2] == "BACKUP_INTEGRITY"
