"""The graph engine against real worker processes (two workers, real LadybugDB files)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.type import date_pb2

from graphgate.server.engine import GraphEngine
from graphgate.server.engine.layout import owner_of
from graphgate.server.errors import (
    AlreadyExists,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    QueryRefused,
    Unavailable,
)
from graphgate.v1 import common_pb2, graph_pb2

V = common_pb2.Value
NULL = V(null_value=struct_pb2.NULL_VALUE)
MIB = 1024 * 1024
POOL = 64 * MIB
# 10^10 rows through a filter: about 80 s of engine work, interruptible at any moment.
LONG_QUERY = (
    "UNWIND range(1, 100000) AS x UNWIND range(1, 100000) AS y "
    "WITH x + y AS z WHERE z < 0 RETURN count(*)"
)
SCHEMA = [
    "CREATE NODE TABLE P(id INT64 PRIMARY KEY, name STRING, born DATE)",
    "CREATE REL TABLE K(FROM P TO P, since INT64)",
]


def graph_on(worker: int) -> str:
    while owner_of(graph_id := str(uuid.uuid4()), 2) != worker:
        pass
    return graph_id


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GraphEngine]:
    started = GraphEngine(
        tmp_path_factory.mktemp("engine"),
        workers=2,
        buffer_pool_bytes=POOL,
        max_db_bytes=1024 * MIB,
    )
    await started.start()
    yield started
    await started.close()


async def new_graph(engine: GraphEngine, worker: int = 0) -> str:
    graph_id = graph_on(worker)
    await engine.create_database(graph_id)
    await engine.apply_schema(graph_id, SCHEMA)
    return graph_id


@pytest.fixture
async def graph(engine: GraphEngine) -> str:
    return await new_graph(engine)


async def run(
    engine: GraphEngine,
    graph_id: str,
    query: str,
    *,
    read_only: bool = True,
    seconds: float = 10.0,
    row_limit: int = 1000,
    max_bytes: int = MIB,
    **parameters: common_pb2.Value,
) -> graph_pb2.ExecuteQueryResponse:
    return await engine.execute(
        graph_id,
        query,
        parameters,
        read_only=read_only,
        timeout_seconds=seconds,
        row_limit=row_limit,
        max_result_bytes=max_bytes,
    )


async def one(engine: GraphEngine, graph_id: str, query: str, **parameters: common_pb2.Value) -> V:
    response = await engine.execute(
        graph_id,
        query,
        parameters,
        read_only=True,
        timeout_seconds=10,
        row_limit=10,
        max_result_bytes=MIB,
    )
    assert len(response.rows) == 1
    return response.rows[0].values[0]


async def count(engine: GraphEngine, graph_id: str) -> int:
    return (await one(engine, graph_id, "MATCH (n:P) RETURN count(n)")).int_value


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def ts(seconds: int, nanos: int = 0) -> V:
    return V(timestamp_value=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))


def lst(*items: V) -> V:
    return V(list_value=common_pb2.ValueList(values=list(items)))


async def test_create_and_drop(engine: GraphEngine) -> None:
    graph_id = graph_on(1)
    await engine.create_database(graph_id)
    assert (await one(engine, graph_id, "RETURN 1")).int_value == 1
    with pytest.raises(AlreadyExists):
        await engine.create_database(graph_id)
    await engine.drop_database(graph_id)
    with pytest.raises(NotFound):
        await run(engine, graph_id, "RETURN 1")
    with pytest.raises(NotFound):
        await engine.drop_database(graph_id)
    with pytest.raises(InvalidArgument):
        await engine.create_database("../../etc")
    with pytest.raises(NotFound):
        await run(engine, graph_on(0), "RETURN 1")  # never created: no empty database appears


async def test_at_most_k_databases_stay_open_and_evicted_ones_reopen(engine: GraphEngine) -> None:
    graphs = [graph_on(1) for _ in range(10)]
    for graph_id in graphs:
        await engine.create_database(graph_id)
        await run(engine, graph_id, "RETURN 1")
    assert (await engine.ping(graphs[0])).open_databases <= 8
    for graph_id in graphs:  # the first ones were evicted: they open again
        assert (await one(engine, graph_id, "RETURN 2")).int_value == 2


async def test_bare_names_never_reach_worker_objects(engine: GraphEngine, graph: str) -> None:
    """The engine's client looks up ``LOAD FROM name`` in the calling frames (LADYBUG.md)."""
    for name in ("parameters", "request", "session", "job", "self", "result"):
        with pytest.raises(InvalidArgument):
            await run(engine, graph, f"LOAD FROM {name} RETURN *")


async def test_dropping_a_graph_interrupts_its_queries(engine: GraphEngine) -> None:
    graph_id = graph_on(1)
    await engine.create_database(graph_id)
    long = asyncio.create_task(run(engine, graph_id, LONG_QUERY, seconds=30))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await engine.drop_database(graph_id)
    assert time.monotonic() - started < 2.0
    with pytest.raises(DeadlineExceeded):
        await long
    with pytest.raises(NotFound):
        await run(engine, graph_id, "RETURN 1")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("9223372036854775807", V(int_value=2**63 - 1)),
        ("-9223372036854775807 - 1", V(int_value=-(2**63))),
        ("CAST(18446744073709551615 AS UINT64)", V(uint_value=2**64 - 1)),
        ("CAST(7 AS UINT8)", V(uint_value=7)),
        (
            "CAST('-170141183460469231731687303715884105728' AS INT128)",
            V(decimal_value=str(-(2**127))),
        ),
        ("CAST(1.5 AS DECIMAL(10, 3))", V(decimal_value="1.500")),
        ("1.0 / 3", V(double_value=1.0 / 3)),
        ("CAST(1.25 AS FLOAT)", V(double_value=1.25)),
        ("'héllo ☃ 𝄞'", V(string_value="héllo ☃ 𝄞")),
        ("BLOB('\\\\xAA\\\\x00abc')", V(bytes_value=b"\xaa\x00abc")),
        ("date('2024-02-29')", V(date_value=date_pb2.Date(year=2024, month=2, day=29))),
        ("timestamp('2024-02-29 12:34:56.123456')", ts(1709210096, 123456000)),
        ("CAST('2024-02-29 14:34:56.123456+02' AS TIMESTAMP_TZ)", ts(1709210096, 123456000)),
        ("CAST('2024-02-29 12:34:56.123456789' AS TIMESTAMP_NS)", ts(1709210096, 123456000)),
        ("CAST('2024-02-29 12:34:56.123' AS TIMESTAMP_MS)", ts(1709210096, 123000000)),
        ("CAST('2024-02-29 12:34:56' AS TIMESTAMP_SEC)", ts(1709210096)),
        (
            "interval('3 days 4 hours 5 minutes 6.789 seconds')",
            V(interval_value=duration_pb2.Duration(seconds=273906, nanos=789000000)),
        ),
        (
            "UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
            V(uuid_value="a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
        ("[[1], [2, 3]]", lst(lst(V(int_value=1)), lst(V(int_value=2), V(int_value=3)))),
        (
            "{a: 1, b: [true]}",
            V(
                map_value=common_pb2.ValueMap(
                    fields={"a": V(int_value=1), "b": lst(V(bool_value=True))}
                )
            ),
        ),
        ("map(['k'], [2])", V(map_value=common_pb2.ValueMap(fields={"k": V(int_value=2)}))),
        (
            "map([1], ['x'])",
            lst(
                V(
                    map_value=common_pb2.ValueMap(
                        fields={"key": V(int_value=1), "value": V(string_value="x")}
                    )
                )
            ),
        ),
        ("null", NULL),
    ],
)
async def test_typed_values_round_trip_exactly(
    engine: GraphEngine, expression: str, expected: V
) -> None:
    graph_id = graph_on(0)
    with contextlib.suppress(AlreadyExists):
        await engine.create_database(graph_id)
    assert await one(engine, graph_id, f"RETURN {expression}") == expected


async def test_nodes_relationships_and_paths(engine: GraphEngine, graph: str) -> None:
    await run(
        engine,
        graph,
        "CREATE (:P {id: 1, name: 'a'})-[:K {since: 5}]->(:P {id: 2, name: 'b'})",
        read_only=False,
    )
    node = (await one(engine, graph, "MATCH (n:P {id: 1}) RETURN n")).node_value
    assert (node.id, node.label, node.properties["name"].string_value) == ("0:0", "P", "a")
    assert node.properties["born"] == NULL
    rel = (await one(engine, graph, "MATCH ()-[r:K]->() RETURN r")).relationship_value
    assert (rel.label, rel.source_id, rel.destination_id) == ("K", "0:0", "0:1")
    assert rel.properties["since"].int_value == 5
    path = (await one(engine, graph, "MATCH p = (:P {id: 1})-[:K*1..2]->(:P) RETURN p")).path_value
    assert [n.properties["id"].int_value for n in path.nodes] == [1, 2]
    assert [r.properties["since"].int_value for r in path.relationships] == [5]
    assert (await one(engine, graph, "MATCH (n:P {id: 2}) RETURN id(n)")).string_value == "0:1"


@pytest.mark.parametrize(
    "value",
    [
        V(int_value=-(2**63)),
        V(int_value=2**63 - 1),
        V(double_value=-0.5),
        V(bool_value=True),
        V(string_value="' RETURN 1 // $x \\u0027"),
        V(bytes_value=b"\x00\xff"),
        V(decimal_value="-1.25"),
        V(date_value=date_pb2.Date(year=1999, month=12, day=31)),
        ts(1709210096, 123456000),
        V(interval_value=duration_pb2.Duration(seconds=90061, nanos=1000)),
        V(uuid_value="a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        lst(V(int_value=1), V(int_value=2)),
        V(map_value=common_pb2.ValueMap(fields={"a": V(string_value="x")})),
        NULL,
    ],
)
async def test_parameters_are_bound_not_spliced(engine: GraphEngine, graph: str, value: V) -> None:
    assert await one(engine, graph, "RETURN $p", p=value) == value


async def test_unsigned_parameters_above_int64_stay_exact(engine: GraphEngine, graph: str) -> None:
    got = await one(engine, graph, "RETURN CAST($u AS UINT64)", u=V(uint_value=2**64 - 1))
    assert got == V(uint_value=2**64 - 1)


async def test_read_only_requests_cannot_write(engine: GraphEngine, graph: str) -> None:
    for query in (
        "CREATE (:P {id: 99})",
        "MATCH (n:P) SET n.name = 'x'",
        "MATCH (n) DETACH DELETE n",
    ):
        with pytest.raises(QueryRefused):
            await run(engine, graph, query)
    assert await count(engine, graph) == 0
    await run(engine, graph, "CREATE (:P {id: 99})", read_only=False)
    assert await count(engine, graph) == 1


async def test_engine_errors_are_invalid_argument_and_scrubbed(
    engine: GraphEngine, graph: str
) -> None:
    with pytest.raises(InvalidArgument, match="Parser exception"):
        await run(engine, graph, "MATCH (n) RETURN")
    with pytest.raises(InvalidArgument, match="one statement"):
        await run(engine, graph, "RETURN 1; RETURN 2")
    with pytest.raises(InvalidArgument) as caught:
        await run(engine, graph, "LOAD FROM '/etc/hostname/secret.csv' RETURN *")
    assert "/etc" not in caught.value.public_message
    assert "<path>" in caught.value.public_message


async def test_row_and_byte_limits_truncate(engine: GraphEngine, graph: str) -> None:
    limited = await run(engine, graph, "UNWIND range(1, 100) AS x RETURN x", row_limit=10)
    assert (limited.row_count, limited.truncated, len(limited.rows)) == (10, True, 10)
    exact = await run(engine, graph, "UNWIND range(1, 10) AS x RETURN x", row_limit=10)
    assert (exact.row_count, exact.truncated) == (10, False)
    cut = await run(
        engine,
        graph,
        "UNWIND range(1, 100) AS x RETURN 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
        max_bytes=200,
    )
    assert cut.truncated
    assert 0 < cut.row_count < 10
    assert sum(row.ByteSize() for row in cut.rows) <= 200


async def test_long_query_is_interrupted_at_its_timeout_while_others_answer(
    engine: GraphEngine,
) -> None:
    slow, neighbour, elsewhere = graph_on(0), graph_on(0), graph_on(1)
    for graph_id in (slow, neighbour, elsewhere):
        await engine.create_database(graph_id)
    started = time.monotonic()
    long = asyncio.create_task(run(engine, slow, LONG_QUERY, seconds=1.0))
    while not long.done():
        for graph_id in (neighbour, elsewhere):
            asked = time.monotonic()
            assert (await one(engine, graph_id, "RETURN 1")).int_value == 1
            assert time.monotonic() - asked < 0.5
        await asyncio.sleep(0.05)
    with pytest.raises(DeadlineExceeded):
        await long
    assert 0.9 < time.monotonic() - started < 2.0


async def test_concurrent_writes_to_one_graph_are_queued(engine: GraphEngine, graph: str) -> None:
    writes = [
        run(engine, graph, "CREATE (:P {id: $i})", read_only=False, i=V(int_value=i))
        for i in range(30)
    ]
    await asyncio.gather(*writes)
    assert await count(engine, graph) == 30


async def test_stream_of_a_million_rows_keeps_worker_memory_flat(
    engine: GraphEngine, graph: str
) -> None:
    worker = psutil.Process(engine.worker_pid(graph))

    async def stream_rows(rows: int) -> tuple[int, int, float]:
        peak, received, done = 0, 0, False

        async def sample() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, worker.memory_info().rss)
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        messages = engine.stream(
            graph,
            f"UNWIND range(1, {rows}) AS x RETURN x",
            {},
            read_only=True,
            timeout_seconds=30,
            row_limit=10_000_000,
        )
        async for message in messages:
            received += len(message.batch.rows)
            if message.HasField("summary"):
                assert (message.summary.row_count, message.summary.truncated) == (rows, False)
        elapsed = time.monotonic() - started
        done = True
        await sampler
        return received, peak, rows / elapsed

    small_rows, small_peak, _ = await stream_rows(100_000)
    big_rows, big_peak, rate = await stream_rows(1_000_000)
    assert (small_rows, big_rows) == (100_000, 1_000_000)
    # The engine materializes a result inside its buffer pool; everything else streams.
    assert big_peak - small_peak < POOL, (small_peak >> 20, big_peak >> 20)
    print(f"1M-row stream: {rate:,.0f} rows/s, worker peak RSS {big_peak >> 20} MiB")


async def test_abandoning_a_stream_cancels_the_engine_work(engine: GraphEngine, graph: str) -> None:
    async def idle() -> bool:
        return (await engine.ping(graph)).active_requests == 0

    async def consume_long() -> None:
        async for _ in engine.stream(
            graph, LONG_QUERY, {}, read_only=True, timeout_seconds=60, row_limit=10
        ):
            pass

    consumer = asyncio.create_task(consume_long())
    await asyncio.sleep(0.5)
    assert not await idle()
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await eventually(idle, within=1.0)

    rows = engine.stream(
        graph,
        "UNWIND range(1, 1000000) AS x RETURN x",
        {},
        read_only=True,
        timeout_seconds=30,
        row_limit=10_000_000,
        batch_rows=100,
    )
    async for message in rows:
        if message.HasField("batch"):
            break
    del rows, message
    gc.collect()  # a dropped generator is closed by the event loop's finalizer
    await eventually(idle, within=1.0)


async def test_a_killed_worker_fails_its_calls_and_returns_alone(engine: GraphEngine) -> None:
    victim, bystander = await new_graph(engine, 0), await new_graph(engine, 1)
    await run(engine, victim, "CREATE (:P {id: 1})", read_only=False)
    in_flight = asyncio.create_task(run(engine, victim, LONG_QUERY, seconds=30))
    await asyncio.sleep(0.3)
    pid = engine.worker_pid(victim)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    with pytest.raises(Unavailable):
        await in_flight

    retry_hints: list[float] = []

    async def recovered() -> bool:
        assert (await one(engine, bystander, "RETURN 1")).int_value == 1  # never disturbed
        try:
            return await count(engine, victim) == 1  # the data survived the kill
        except Unavailable as error:
            retry_hints.append(error.retry_after_seconds)
            return False

    await eventually(recovered, within=2.5)
    print(f"worker back {time.monotonic() - killed:.2f} s after kill -9")
    assert all(hint > 0 for hint in retry_hints)
    assert engine.worker_pid(victim) != pid


async def test_a_query_that_crashes_the_engine_costs_only_its_worker(engine: GraphEngine) -> None:
    victim, bystander = graph_on(1), graph_on(0)
    for graph_id in (victim, bystander):
        await engine.create_database(graph_id)
    pid = engine.worker_pid(victim)
    with pytest.raises(Unavailable):
        await run(engine, victim, "RETURN properties(null)")
    assert (await one(engine, bystander, "RETURN 1")).int_value == 1
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    async def answers() -> bool:
        with contextlib.suppress(Unavailable):
            return (await one(engine, victim, "RETURN 2")).int_value == 2
        return False

    await eventually(answers, within=2.5)


async def test_schema_changes_are_all_or_nothing(engine: GraphEngine) -> None:
    graph_id = graph_on(1)
    await engine.create_database(graph_id)
    with pytest.raises(InvalidArgument, match="statement 2") as caught:
        await engine.apply_schema(
            graph_id, ["CREATE NODE TABLE A(id INT64 PRIMARY KEY)", "CREATE NODE TABLE A(x INT64)"]
        )
    assert caught.value.violations[0].field == "statements[1]"
    with pytest.raises(InvalidArgument, match="not a schema statement"):
        await engine.apply_schema(
            graph_id, ["CREATE NODE TABLE A(id INT64 PRIMARY KEY)", "CREATE (:A {id: 1})"]
        )
    assert await engine.get_schema(graph_id) == []
    tables = await engine.apply_schema(
        graph_id, [*SCHEMA, "CREATE NODE TABLE `we'ird`(id SERIAL PRIMARY KEY)"]
    )
    assert [t.name for t in tables] == ["K", "P", "we'ird"]
    rel, node = tables[0], tables[1]
    assert (rel.kind, rel.source_table, rel.destination_table) == ("REL", "P", "P")
    assert (node.kind, node.primary_key, [c.name for c in node.columns]) == (
        "NODE",
        "id",
        ["id", "name", "born"],
    )
    assert await engine.get_schema(graph_id) == tables


async def test_bulk_loads_are_all_or_nothing(
    engine: GraphEngine, graph: str, tmp_path: Path
) -> None:
    uploads = engine.data_dir / "uploads"
    uploads.mkdir(exist_ok=True)
    good, dup, rows_json = uploads / f"{graph}-a", uploads / f"{graph}-b", uploads / f"{graph}-c"
    good.write_text("id,name,born\n1,a,2000-01-01\n2,b,\n")
    dup.write_text("id,name,born\n3,c,\n3,d,\n")
    rows_json.write_text(json.dumps([{"id": 5, "name": "e", "born": "2001-02-03"}]))
    parquet = pa.table({"id": [4], "name": ["d"], "born": pa.array([None], pa.date32())})
    pq.write_table(parquet, uploads / f"{graph}.parquet")
    progress: list[tuple[int, int]] = []
    assert (
        await engine.bulk_load(
            graph, "P", good, "csv", on_progress=lambda d, t: progress.append((d, t))
        )
        == 2
    )
    assert progress[-1] == (good.stat().st_size, good.stat().st_size)
    with pytest.raises(InvalidArgument, match="duplicated primary key") as caught:
        await engine.bulk_load(graph, "P", dup, "csv")
    assert str(uploads) not in caught.value.public_message
    assert await engine.bulk_load(graph, "P", uploads / f"{graph}.parquet", "parquet") == 1
    assert await engine.bulk_load(graph, "P", rows_json, "json") == 1
    assert await count(engine, graph) == 4
    outside = tmp_path / "x.csv"
    outside.write_text("id\n9\n")
    for path in (outside, Path("/etc/passwd"), uploads / "missing.csv"):
        with pytest.raises(InvalidArgument):
            await engine.bulk_load(graph, "P", path, "csv")
    with pytest.raises(NotFound):
        await engine.bulk_load(graph, "Nope", good, "csv")


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("repeats a key", "id,name,born\n10,a,\n11,b,\n10,c,\n"),
        ("holds a key the table has", "id,name,born\n12,a,\n1,b,\n"),
        ("key spelt differently", "id,name,born\n13,a,\n0001,b,\n"),
    ],
)
async def test_repeated_keys_into_a_table_with_rows_are_refused_and_the_worker_survives(
    engine: GraphEngine, case: str, body: str
) -> None:
    """LadybugDB 0.22 corrupts its heap when such a COPY fails (the worker dies
    when the database closes): the load is refused before the COPY instead."""
    graph_id = await new_graph(engine)
    await run(engine, graph_id, "CREATE (:P {id: 1, name: 'first'})", read_only=False)
    uploads = engine.data_dir / "uploads"
    uploads.mkdir(exist_ok=True)
    source = uploads / f"{graph_id}.csv"
    source.write_text(body)
    pid = engine.worker_pid(graph_id)
    with pytest.raises(InvalidArgument, match="duplicated primary key") as caught:
        await engine.bulk_load(graph_id, "P", source, "csv")
    assert caught.value.reason == "DUPLICATE_PRIMARY_KEY"
    assert await count(engine, graph_id) == 1
    # Closing the database is where a corrupted heap crashes the worker.
    await engine.drop_database(graph_id)
    other = await new_graph(engine)
    assert (await one(engine, other, "RETURN 7")).int_value == 7
    assert engine.worker_pid(graph_id) == pid


async def test_a_file_without_repeats_loads_into_a_table_with_rows(engine: GraphEngine) -> None:
    graph_id = await new_graph(engine)
    await run(engine, graph_id, "CREATE (:P {id: 1, name: 'first'})", read_only=False)
    uploads = engine.data_dir / "uploads"
    uploads.mkdir(exist_ok=True)
    source = uploads / f"{graph_id}.csv"
    source.write_text("id,name,born\n2,b,2001-01-01\n3,c,\n")
    assert await engine.bulk_load(graph_id, "P", source, "csv") == 2
    assert await count(engine, graph_id) == 3
    missing = uploads / f"{graph_id}-null.csv"
    missing.write_text("id,name,born\n4,d,\n,e,\n")
    with pytest.raises(InvalidArgument, match="no value for the primary key"):
        await engine.bulk_load(graph_id, "P", missing, "csv")
    # The key column's name goes between backticks in the check's statements.
    sneaky = uploads / f"{graph_id}-sneaky.csv"
    sneaky.write_text("id` = 1 RETURN 1 //,name,born\n4,d,\n")
    with pytest.raises(InvalidArgument, match="backtick"):
        await engine.bulk_load(graph_id, "P", sneaky, "csv")
    assert await count(engine, graph_id) == 3


async def test_memory_watchdog_restarts_a_runaway_worker_and_close_stops_all(
    tmp_path: Path,
) -> None:
    """A ``range()`` list lives outside the buffer pool: only the watchdog bounds it."""
    small = GraphEngine(tmp_path, workers=1, max_worker_rss_bytes=400 * MIB)
    await small.start()
    try:
        graph_id = str(uuid.uuid4())
        await small.create_database(graph_id)
        with pytest.raises(Unavailable):
            await run(small, graph_id, "UNWIND range(1, 300000000) AS x RETURN count(*)")

        async def answers() -> bool:
            with contextlib.suppress(Unavailable):
                return (await one(small, graph_id, "RETURN 1")).int_value == 1
            return False

        await eventually(answers, within=3.0)
        pid = small.worker_pid(graph_id)
    finally:
        await small.close()
    assert not psutil.pid_exists(pid)
