"""C15 query security, through a real channel and real graph workers."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.type import date_pb2
from grpc import aio

from graphgate.server.audit import AuditLog
from graphgate.server.lifecycle import Stores
from graphgate.v1 import common_pb2, graph_pb2, graph_pb2_grpc
from tests.support import bearer, code_of, register, wait_for_event

pytestmark = pytest.mark.security

SCHEMA = [
    "CREATE NODE TABLE Person(id INT64 PRIMARY KEY, name STRING)",
    "CREATE REL TABLE Knows(FROM Person TO Person)",
]


async def _graph_with_viewer(channel: aio.Channel) -> tuple[str, str, str]:
    owner = await register(channel)
    viewer = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    created = await stub.CreateGraph(
        graph_pb2.CreateGraphRequest(name="q", schema=SCHEMA), metadata=bearer(owner.token)
    )
    graph_id = created.graph.graph_id
    await stub.ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(
            graph_id=graph_id,
            query="UNWIND range(1, 50) AS i CREATE (:Person {id: i, name: 'p' + string(i)})",
        ),
        metadata=bearer(owner.token),
    )
    await stub.AddMember(
        graph_pb2.AddMemberRequest(
            graph_id=graph_id, email=viewer.email, role=common_pb2.ROLE_VIEWER
        ),
        metadata=bearer(owner.token),
    )
    return graph_id, owner.token, viewer.token


async def _run(
    channel: aio.Channel, graph_id: str, token: str, query: str, **fields: object
) -> graph_pb2.ExecuteQueryResponse | grpc.RpcError:
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    try:
        reply: graph_pb2.ExecuteQueryResponse = await stub.ExecuteQuery(
            graph_pb2.ExecuteQueryRequest(graph_id=graph_id, query=query, **fields),  # type: ignore[arg-type]
            metadata=bearer(token),
        )
    except grpc.RpcError as error:
        return error
    return reply


async def _count(channel: aio.Channel, graph_id: str, token: str) -> int:
    reply = await _run(channel, graph_id, token, "MATCH (p:Person) RETURN count(*)")
    assert isinstance(reply, graph_pb2.ExecuteQueryResponse)
    return int(reply.rows[0].values[0].int_value)


#: Statements a viewer must never get to write with.
VIEWER_EVASIONS = [
    "CREATE (:Person {id: 1000})",
    "MATCH (p:Person) DELETE p",
    "MATCH (p:Person) DETACH DELETE p",
    "MATCH (p:Person) SET p.name = 'x'",
    "MERGE (:Person {id: 1001})",
    "match (p:Person) detach delete p",
    "MATCH (p:Person) DETACH/**/DELETE p",
    "MATCH (p:Person) DETACH\u00a0DELETE p",
    "MATCH (p:Person) DETACH\u180eDELETE p",
    "MATCH (p:Person) WHERE p.name = 'https://x' DETACH DELETE p",
    "MATCH (p:Person) WHERE p.name = '//' DETACH DELETE p // comment",
    "MATCH (p:Person) /* RETURN p */ DETACH DELETE p",
    "RETURN 1; MATCH (p:Person) DETACH DELETE p",
    "RETURN 1 ; CREATE (:Person {id: 1002})",
    "BEGIN TRANSACTION; CREATE (:Person {id: 1003}); COMMIT",
    "COMMIT; CREATE (:Person {id: 1004})",
    "MATCH (a:Person), (b:Person) WHERE a.id = 1 AND b.id = 2 CREATE (a)-[:Knows]->(b)",
    "MATCH (a:Person) WITH a CREATE (:Person {id: a.id + 5000})",
    "UNWIND [1,2] AS x CREATE (:Person {id: x + 6000})",
    "CALL create_something()",
    "RETURN nextval('s')",
    "`CREATE` (:Person {id: 7000})",
    "CREATE (:Person {id: 7001}) RETURN 1",
    "OPTIONAL MATCH (p:Person) SET p.id = p.id + 1",
    "MATCH (p:Person) REMOVE p.name",
    "DROP TABLE Knows",
    "ALTER TABLE Person ADD age INT64",
    "CREATE NODE TABLE Evil(id INT64 PRIMARY KEY)",
    "CHECKPOINT",
    "CALL timeout=0",
    "CALL threads=1",
]

#: Statements refused for every role, admins included.
FORBIDDEN = [
    "LOAD FROM '/etc/passwd' (file_format='csv', header=false) RETURN *",
    "LOAD FROM secret_df RETURN *",
    "COPY Person FROM '/etc/passwd'",
    "COPY (MATCH (p:Person) RETURN p.name) TO '{tmp}/exported.csv'",
    "EXPORT DATABASE '{tmp}/dump'",
    "IMPORT DATABASE '{tmp}/dump'",
    "ATTACH '{tmp}/other.db' AS other (dbtype lbug)",
    "DETACH other",
    "USE other",
    "INSTALL json",
    "LOAD EXTENSION '{tmp}/evil.so'",
    "LOAD json",
    "CALL timeout=0",
    "CALL read_csv_parallel('/etc/passwd')",
    "CALL read_parquet('/etc/passwd')",
    "CREATE NODE TABLE T AS LOAD FROM '/etc/passwd' (file_format='csv') RETURN *",
    "CREATE GRAPH other",
    "EXPLAIN EXPORT DATABASE '{tmp}/explained'",
    "PROFILE MATCH (p:Person) RETURN p",
    "CHECKPOINT",
    "BEGIN TRANSACTION READ ONLY",
    "ROLLBACK",
    "RETURN 1; RETURN 2",
    "",
    "RETURN '\x00'",
    "RETURN 1 /* unterminated",
    "RETURN \u200b1",
]


async def test_c15_viewers_cannot_write_by_any_statement(
    channel: aio.Channel, audit_log: AuditLog
) -> None:
    """C15: every statement in the evasion corpus is refused for a viewer and
    the graph is unchanged; refusals are audited."""
    graph_id, owner, viewer = await _graph_with_viewer(channel)
    before = await _count(channel, graph_id, owner)
    for query in VIEWER_EVASIONS:
        reply = await _run(channel, graph_id, viewer, query)
        assert isinstance(reply, grpc.RpcError), query
        assert code_of(reply) in {
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
        }, query
    assert await _count(channel, graph_id, owner) == before
    names = await _run(
        channel, graph_id, owner, "MATCH (p:Person) WHERE p.name = 'x' RETURN count(*)"
    )
    assert isinstance(names, graph_pb2.ExecuteQueryResponse)
    assert names.rows[0].values[0].int_value == 0
    await wait_for_event(audit_log, "privilege_escalation_attempt")


async def test_c15_file_extension_setting_and_transaction_statements_refused_for_admins(
    channel: aio.Channel, tmp_path: Path, audit_log: AuditLog
) -> None:
    """C15: BULK and ADMIN statements are refused for every caller (data enters
    through uploads only) and no file is read or written."""
    graph_id, owner, _ = await _graph_with_viewer(channel)
    for template in FORBIDDEN:
        query = template.replace("{tmp}", str(tmp_path))
        reply = await _run(channel, graph_id, owner, query)
        assert isinstance(reply, grpc.RpcError), query
        assert code_of(reply) in {
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
        }, query
        assert "root:" not in (reply.details() or ""), query
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - a test-local directory listing
    event = await wait_for_event(audit_log, "injection_attempt")
    assert event["risk_level"] == "HIGH"
    # The graph is still writable (no ATTACH turned it read-only).
    created = await _run(channel, graph_id, owner, "CREATE (:Person {id: 999})")
    assert isinstance(created, graph_pb2.ExecuteQueryResponse)


async def test_c15_every_referenced_parameter_must_be_supplied(channel: aio.Channel) -> None:
    graph_id, owner, _ = await _graph_with_viewer(channel)
    reply = await _run(channel, graph_id, owner, "MATCH (p:Person) WHERE p.id = $id RETURN p")
    assert isinstance(reply, grpc.RpcError)
    assert code_of(reply) in {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT}
    ok = await _run(
        channel,
        graph_id,
        owner,
        "MATCH (p:Person) WHERE p.id = $id RETURN p.name",
        parameters={"id": common_pb2.Value(int_value=7)},
    )
    assert isinstance(ok, graph_pb2.ExecuteQueryResponse)
    assert ok.rows[0].values[0].string_value == "p7"


async def test_c15_analyze_classifies_without_running(channel: aio.Channel) -> None:
    account = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    cases = {
        "MATCH (n) RETURN n": graph_pb2.QUERY_CLASS_READ,
        "CREATE (:P {id: 1})": graph_pb2.QUERY_CLASS_WRITE,
        "MATCH (n) SET n.x = 1 RETURN n": graph_pb2.QUERY_CLASS_MIXED,
        "COPY P FROM 'x.csv'": graph_pb2.QUERY_CLASS_BULK,
        "ATTACH 'x' AS y (dbtype lbug)": graph_pb2.QUERY_CLASS_ADMIN,
        "CREATE NODE TABLE P(id INT64 PRIMARY KEY)": graph_pb2.QUERY_CLASS_SCHEMA_DDL,
    }
    for query, expected in cases.items():
        reply = await stub.AnalyzeQuery(
            graph_pb2.AnalyzeQueryRequest(query=query), metadata=bearer(account.token)
        )
        assert reply.query_class == expected, query
        assert reply.reasons, query


async def test_c15_limits_the_query_cannot_change(channel: aio.Channel) -> None:
    """C15: rows beyond the limit are cut and flagged; a long query is stopped
    at its timeout and the service answers right after."""
    graph_id, owner, _ = await _graph_with_viewer(channel)
    cut = await _run(channel, graph_id, owner, "MATCH (p:Person) RETURN p.id", row_limit=10)
    assert isinstance(cut, graph_pb2.ExecuteQueryResponse)
    assert (cut.row_count, cut.truncated) == (10, True)
    whole = await _run(channel, graph_id, owner, "MATCH (p:Person) RETURN p.id")
    assert isinstance(whole, graph_pb2.ExecuteQueryResponse)
    assert not whole.truncated
    started = time.monotonic()
    slow = await _run(
        channel,
        graph_id,
        owner,
        "MATCH (a:Person), (b:Person), (c:Person), (d:Person), (e:Person) "
        "WHERE a.id * b.id + c.id * d.id = e.id * 7919 RETURN count(*)",
        timeout_ms=500,
    )
    assert isinstance(slow, grpc.RpcError)
    assert code_of(slow) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 10
    assert await _count(channel, graph_id, owner) == 50


async def test_c15_a_crashing_query_costs_one_worker_not_the_service(
    channel: aio.Channel, stores: Stores
) -> None:
    """C15: a statement that crashes the engine (it segfaults on
    properties(null)) fails with UNAVAILABLE; the worker restarts and the
    graph answers again; graphs of other workers never notice."""
    graph_id, _, viewer = await _graph_with_viewer(channel)
    pid = stores.engine.worker_pid(graph_id)
    crash = await _run(channel, graph_id, viewer, "RETURN properties(null)")
    assert isinstance(crash, grpc.RpcError)
    assert code_of(crash) in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT}
    for _ in range(60):
        reply = await _run(channel, graph_id, viewer, "MATCH (p:Person) RETURN count(*)")
        if isinstance(reply, graph_pb2.ExecuteQueryResponse):
            break
        await asyncio.sleep(0.1)
    assert isinstance(reply, graph_pb2.ExecuteQueryResponse)
    assert reply.rows[0].values[0].int_value == 50
    if code_of(crash) == grpc.StatusCode.UNAVAILABLE:
        assert stores.engine.worker_pid(graph_id) != pid


async def test_c15_killing_a_worker_is_survived(channel: aio.Channel, stores: Stores) -> None:
    """C15: a graph worker killed from outside is restarted; its graphs answer again."""
    graph_id, owner, _ = await _graph_with_viewer(channel)
    pid = stores.engine.worker_pid(graph_id)
    os.kill(pid, 9)
    started = time.monotonic()
    for _ in range(100):
        reply = await _run(channel, graph_id, owner, "MATCH (p:Person) RETURN count(*)")
        if isinstance(reply, graph_pb2.ExecuteQueryResponse):
            break
        assert code_of(reply) == grpc.StatusCode.UNAVAILABLE
        await asyncio.sleep(0.05)
    assert isinstance(reply, graph_pb2.ExecuteQueryResponse)
    print(f"graph answered again {time.monotonic() - started:.2f}s after kill -9")
    assert stores.engine.worker_pid(graph_id) != pid


async def test_values_round_trip_exactly(channel: aio.Channel) -> None:
    """int64 extremes, unicode, bytes, dates and timestamps come back exactly."""
    account = await register(channel)
    stub = graph_pb2_grpc.GraphServiceStub(channel)
    created = await stub.CreateGraph(
        graph_pb2.CreateGraphRequest(name="v"), metadata=bearer(account.token)
    )
    graph_id = created.graph.graph_id
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC))
    params = {
        "big": common_pb2.Value(int_value=2**63 - 1),
        "small": common_pb2.Value(int_value=-(2**63)),
        "text": common_pb2.Value(string_value="héllo ☃ \U0001f600"),
        "blob": common_pb2.Value(bytes_value=b"\x00\xff\x10"),
        "day": common_pb2.Value(date_value=date_pb2.Date(year=2024, month=2, day=29)),
        "instant": common_pb2.Value(timestamp_value=stamp),
        "real": common_pb2.Value(double_value=0.1),
        "items": common_pb2.Value(
            list_value=common_pb2.ValueList(
                values=[common_pb2.Value(int_value=1), common_pb2.Value(int_value=2)]
            )
        ),
    }
    reply = await stub.ExecuteQuery(
        graph_pb2.ExecuteQueryRequest(
            graph_id=graph_id,
            query="RETURN $big, $small, $text, $blob, $day, $instant, $real, $items",
            parameters=params,
        ),
        metadata=bearer(account.token),
    )
    assert list(reply.rows[0].values) == [
        params[k] for k in ("big", "small", "text", "blob", "day", "instant", "real", "items")
    ]
    assert reply.query_class == graph_pb2.QUERY_CLASS_READ
