"""Streaming: StreamQuery through the service against direct iteration of the same result.

A result stream is one long call, so this is a script of its own::

    python -m benchmarks.streaming                        # 100k, 1M and 10M rows
    python -m benchmarks.streaming --rows 100000,1000000 --json var/stream.json

For each size it writes one Parquet file of ``Item(id INT64, name STRING)``
rows, loads it into a fresh graph of the service (through the graph engine,
not an upload: the load is not what is measured) and into a direct
in-process LadybugDB database opened with the graph workers' settings, then
reads ``MATCH (i:Item) RETURN i.id, i.name`` to the end:

- **direct**: iteration of the engine's result in a spawned process of its
  own (``has_next``/``get_next``, every value converted to Python);
- **service**: ``StreamQuery`` through the production chain and a graph
  worker, read to its summary by a client in a spawned process of its own.

``ratio`` is service rows/s ÷ direct rows/s (the target is ≥ 0.5). Peak RSS
is sampled every 10 ms for the API server (this process) and the graph
worker while the stream runs: flat from 100k to 10M rows means the stream
holds no result in memory (the worker's RSS before a stream includes what
loading the rows left behind). The sides alternate for ``--rounds`` rounds;
times and ratios are medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

import psutil

from benchmarks.memory import PeakSampler

__all__ = ["main"]

_SCHEMA = "CREATE NODE TABLE Item(id INT64 PRIMARY KEY, name STRING)"
_QUERY = "MATCH (i:Item) RETURN i.id, i.name"
_MIB = 2**20
#: The graph workers' defaults (`GraphEngine`), so both sides run the same engine setup;
#: the buffer pool is the script's ``--buffer-pool-mib`` on both sides.
_MAX_DB = 4096 * _MIB
_THREADS = 1
#: The longest a stream may take (an admin's ceiling is 300 s).
_STREAM_SECONDS = 300


@dataclass
class Figures:
    """One size's measurements."""

    rows: int
    direct_seconds: float
    direct_rows_per_s: float
    service_seconds: float
    service_rows_per_s: float
    ratio: float
    server_rss_before_mib: float
    server_peak_rss_mib: float
    worker_rss_before_mib: float
    worker_peak_rss_mib: float
    direct_process_peak_rss_mib: float


def write_file(path: Path, rows: int) -> None:
    """``rows`` items as Parquet (in a spawned process: Arrow's memory stays there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = pa.array(range(rows), pa.int64())
    names = pa.array([f"item-{i}" for i in range(rows)])
    pq.write_table(pa.table({"id": ids, "name": names}), path)


def direct_read(parquet: str, database_dir: str, pool_mib: int) -> tuple[float, int, int]:
    """Spawned: load the file into a fresh database, then time reading the result.

    Returns the seconds of the read alone, the rows read and the process's peak RSS.
    """
    import ladybug

    database = ladybug.Database(
        str(Path(database_dir) / "graph.lbdb"),
        buffer_pool_size=pool_mib * _MIB,
        max_db_size=_MAX_DB,
        max_num_threads=_THREADS,
    )
    connection = ladybug.Connection(database, num_threads=_THREADS)
    connection.execute(_SCHEMA)
    connection.execute(f"COPY Item FROM '{parquet}'")
    started = time.perf_counter()
    result = connection.execute(_QUERY)
    if not isinstance(result, ladybug.QueryResult):
        raise TypeError("one statement gives one result")
    count = 0
    while result.has_next():
        result.get_next()
        count += 1
    elapsed = time.perf_counter() - started
    result.close()
    connection.close()
    database.close()
    return elapsed, count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def service_read(address: str, token: str, graph_id: str) -> tuple[float, int]:
    """Spawned: StreamQuery read to its summary; seconds and rows, as the client saw them."""
    import grpc
    import uvloop

    from graphgate.v1 import graph_pb2, graph_pb2_grpc

    async def read() -> tuple[float, int]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = graph_pb2_grpc.GraphServiceStub(channel)
            request = graph_pb2.StreamQueryRequest(
                graph_id=graph_id, query=_QUERY, timeout_ms=_STREAM_SECONDS * 1000
            )
            metadata = (("authorization", f"Bearer {token}"),)
            rows = 0
            started = time.perf_counter()
            async for message in stub.StreamQuery(
                request, metadata=metadata, timeout=_STREAM_SECONDS + 10
            ):
                rows += len(message.batch.rows)
            return time.perf_counter() - started, rows

    return uvloop.run(read())


@dataclass
class Round:
    """One round of one size: both sides."""

    direct_seconds: float
    direct_peak: int
    service_seconds: float
    server_before: int
    server_peak: int
    worker_before: int
    worker_peak: int


async def measure(
    sizes: Sequence[int], work: Path, rounds: int, pool_mib: int
) -> dict[int, list[Round]]:
    """Rounds of the direct read and the service stream, interleaved, per size."""
    from grpc import aio

    from benchmarks.cases.chain import ChainServer
    from graphgate.v1 import auth_pb2, auth_pb2_grpc, graph_pb2, graph_pb2_grpc

    results: dict[int, list[Round]] = {size: [] for size in sizes}
    spawn = multiprocessing.get_context("spawn")
    server = ChainServer()
    try:
        # One client reads up to 10M rows: the stream category's budget is not the point.
        port = await server.start("127.0.0.1:0", rate_limits=False, graph_buffer_pool_mib=pool_mib)
        stores = server.stores
        uploads = stores.engine.data_dir / "uploads"
        uploads.mkdir(exist_ok=True)
        async with AsyncExitStack() as stack:
            channel = await stack.enter_async_context(aio.insecure_channel(f"127.0.0.1:{port}"))
            session = await auth_pb2_grpc.AuthServiceStub(channel).Register(
                auth_pb2.RegisterRequest(
                    email="stream-bench@example.com",
                    password="Gq7!vR2#mZ9@kL4$",  # noqa: S106 - a throwaway local account
                    name="Bench",
                )
            )
            token = session.session.access_token
            graphs = graph_pb2_grpc.GraphServiceStub(channel)
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=1, mp_context=spawn))
            loop = asyncio.get_running_loop()
            for size in sizes:
                parquet = uploads / f"items-{size}.parquet"
                await loop.run_in_executor(pool, write_file, parquet, size)
                created = await graphs.CreateGraph(
                    graph_pb2.CreateGraphRequest(name=f"stream {size}", schema=[_SCHEMA]),
                    metadata=(("authorization", f"Bearer {token}"),),
                )
                graph_id = created.graph.graph_id
                loaded = await stores.engine.bulk_load(graph_id, "Item", parquet, "parquet")
                if loaded != size:
                    raise RuntimeError(f"loaded {loaded} rows of {size}")
                for _ in range(rounds):
                    direct_dir = tempfile.mkdtemp(prefix="direct-", dir=work)
                    direct_s, direct_rows, direct_peak = await loop.run_in_executor(
                        pool, direct_read, str(parquet), direct_dir, pool_mib
                    )
                    before = psutil.Process().memory_info().rss
                    worker_before = (
                        psutil.Process(stores.engine.worker_pid(graph_id)).memory_info().rss
                    )
                    pids = {
                        "server": psutil.Process().pid,
                        "worker": stores.engine.worker_pid(graph_id),
                    }
                    with PeakSampler(pids).running() as sampler:
                        service_s, service_rows = await loop.run_in_executor(
                            pool, service_read, f"127.0.0.1:{port}", token, graph_id
                        )
                    if direct_rows != size or service_rows != size:
                        raise RuntimeError(f"read {direct_rows} and {service_rows} of {size} rows")
                    results[size].append(
                        Round(
                            direct_seconds=direct_s,
                            direct_peak=direct_peak,
                            service_seconds=service_s,
                            server_before=before,
                            server_peak=sampler.peaks["server"],
                            worker_before=worker_before,
                            worker_peak=sampler.peaks["worker"],
                        )
                    )
                    print(
                        f"  {size:,} rows: direct {direct_s:.2f} s, service {service_s:.2f} s",
                        file=sys.stderr,
                    )
                parquet.unlink()
    finally:
        await server.stop(1)
    return results


def _figures(size: int, rounds: list[Round]) -> Figures:
    direct_s = median(r.direct_seconds for r in rounds)
    service_s = median(r.service_seconds for r in rounds)
    return Figures(
        rows=size,
        direct_seconds=direct_s,
        direct_rows_per_s=size / direct_s,
        service_seconds=service_s,
        service_rows_per_s=size / service_s,
        ratio=median(r.direct_seconds / r.service_seconds for r in rounds),
        server_rss_before_mib=min(r.server_before for r in rounds) / _MIB,
        server_peak_rss_mib=max(r.server_peak for r in rounds) / _MIB,
        worker_rss_before_mib=min(r.worker_before for r in rounds) / _MIB,
        worker_peak_rss_mib=max(r.worker_peak for r in rounds) / _MIB,
        direct_process_peak_rss_mib=max(r.direct_peak for r in rounds) / _MIB,
    )


def _table(figures: Sequence[Figures]) -> str:
    header = (
        "| rows | direct s | direct rows/s | service s | service rows/s | ratio "
        "| server RSS before → peak MiB | worker RSS before → peak MiB "
        "| direct process peak MiB |"
    )
    lines = [header, "|" + " --- |" * 9]
    for f in figures:
        lines.append(
            f"| {f.rows:,} | {f.direct_seconds:.2f} | {f.direct_rows_per_s:,.0f} "
            f"| {f.service_seconds:.2f} | {f.service_rows_per_s:,.0f} | {f.ratio:.2f} "
            f"| {f.server_rss_before_mib:.0f} → {f.server_peak_rss_mib:.0f} "
            f"| {f.worker_rss_before_mib:.0f} → {f.worker_peak_rss_mib:.0f} "
            f"| {f.direct_process_peak_rss_mib:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; prints a Markdown table. Exit status 0, or 2 on bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__)
    parser.add_argument(
        "--rows", default="100000,1000000,10000000", help="comma-separated result sizes"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds; figures are medians")
    parser.add_argument(
        "--buffer-pool-mib",
        type=int,
        default=1024,
        help="engine buffer pool on both sides: a result must fit in it (10M rows need ~1 GiB)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    try:
        sizes = [int(part) for part in args.rows.split(",")]
    except ValueError:
        sizes = []
    if (
        not sizes
        or not all(1000 <= s <= 50_000_000 for s in sizes)
        or not 1 <= args.rounds <= 20
        or not 16 <= args.buffer_pool_mib <= 65536
    ):
        print(
            "--rows takes sizes in 1000..50,000,000, --rounds 1..20, --buffer-pool-mib 16..65536",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="graphgate-stream-bench-") as temporary:
        measured = asyncio.run(measure(sizes, Path(temporary), args.rounds, args.buffer_pool_mib))
    figures = [_figures(size, rounds) for size, rounds in measured.items()]
    print(_table(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
