"""Ingest throughput: UploadService against the engine's own ``COPY`` of the same file.

The case API (`benchmarks.case`) measures many small concurrent calls; an
ingest is one long call, so this is a script of its own::

    python -m benchmarks.ingest                  # 1,000,000 rows, CSV and Parquet
    python -m benchmarks.ingest --rows 200000 --json var/ingest.json

For each format it writes one file (id INT64 primary key, name STRING, score
DOUBLE, amount INT64), then measures, in the same run:

- **engine**: ``COPY Item FROM '<file>'`` on a direct in-process LadybugDB
  database opened with the graph workers' settings (64 MiB buffer pool, one
  thread per query), in a spawned process of its own; the COPY alone is timed.
- **service**: the file goes to the embedded S3 through the presigned POST,
  ``CompleteUpload`` validates it (timed apart), then ``IngestUpload`` is timed
  from the request to its last message: the download with ETag and SHA-256
  checks, the schema re-check and the worker's COPY.

``ratio`` is service rows/s ÷ engine rows/s (the target is ≥ 0.8). The two
sides alternate, format by format, for ``--rounds`` rounds (default 3); times
and ratios are medians over rounds. Peak memory is sampled every 10 ms during
the ingest for the API server process (this process: the server and its one
client stream; the files are written by another process) and for the graph
worker owning the graph; the baseline reports its process's own peak.
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

_SCHEMA = "CREATE NODE TABLE Item(id INT64 PRIMARY KEY, name STRING, score DOUBLE, amount INT64)"
_MIB = 2**20
#: The graph workers' defaults (`GraphEngine`), so both sides run the same engine setup.
_BUFFER_POOL = 64 * _MIB
_MAX_DB = 4096 * _MIB
_THREADS = 1


@dataclass
class Figures:
    """One format's measurements."""

    file_format: str
    rows: int
    file_mib: float
    engine_seconds: float
    engine_rows_per_s: float
    engine_peak_rss_mib: float
    service_seconds: float
    service_rows_per_s: float
    ratio: float
    complete_seconds: float
    server_rss_before_mib: float
    server_peak_rss_mib: float
    worker_peak_rss_mib: float


def write_files(directory: Path, rows: int) -> dict[str, Path]:
    """The same rows as CSV (with a header) and as Parquet."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    ids = list(range(rows))
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"name-{i}" for i in ids]),
            "score": pa.array([i / 7 for i in ids], pa.float64()),
            "amount": pa.array([(i * 7919) % 1_000_003 - 500_000 for i in ids], pa.int64()),
        }
    )
    files = {"csv": directory / "items.csv", "parquet": directory / "items.parquet"}
    pa_csv.write_csv(table, files["csv"], pa_csv.WriteOptions(quoting_style="needed"))
    pq.write_table(table, files["parquet"])
    return files


def _copy_once(path: str, file_format: str, database_file: Path) -> float:
    import ladybug

    database = ladybug.Database(
        str(database_file),
        buffer_pool_size=_BUFFER_POOL,
        max_db_size=_MAX_DB,
        max_num_threads=_THREADS,
    )
    connection = ladybug.Connection(database, num_threads=_THREADS)
    connection.execute(_SCHEMA)
    options = "(file_format='csv', header=true)" if file_format == "csv" else ""
    started = time.perf_counter()
    connection.execute(f"COPY Item FROM '{path}' {options}")
    elapsed = time.perf_counter() - started
    connection.close()
    database.close()
    return elapsed


def engine_copy(path: str, file_format: str, database_dir: str) -> tuple[float, int]:
    """Runs in a spawned process: seconds of the COPY alone and the process's peak RSS.

    A first COPY into a throwaway database warms the process (library start,
    first page faults), as the long-lived graph worker is warm; the second,
    into a fresh database, is timed.
    """
    _copy_once(path, file_format, Path(database_dir) / "warm-up.lbdb")
    elapsed = _copy_once(path, file_format, Path(database_dir) / "graph.lbdb")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return elapsed, peak


def measure_engine(path: Path, file_format: str, work: Path) -> tuple[float, int]:
    """`engine_copy` in a fresh spawned process (its memory is its own)."""
    database_dir = Path(tempfile.mkdtemp(prefix=f"engine-{file_format}-", dir=work))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(engine_copy, str(path), file_format, str(database_dir)).result()


@dataclass
class Round:
    """One round of one format: both sides."""

    engine_seconds: float
    engine_peak: int
    ingest_seconds: float
    complete_seconds: float
    server_before: int
    server_peak: int
    worker_peak: int


async def measure(
    files: dict[str, Path], rows: int, work: Path, rounds: int
) -> dict[str, list[Round]]:
    """Rounds of the engine baseline and the service, interleaved, per format."""
    import httpx
    from grpc import aio

    from benchmarks.cases.chain import ChainServer
    from graphgate.v1 import (
        auth_pb2,
        auth_pb2_grpc,
        graph_pb2,
        graph_pb2_grpc,
        upload_pb2,
        upload_pb2_grpc,
    )

    formats = {"csv": upload_pb2.UPLOAD_FORMAT_CSV, "parquet": upload_pb2.UPLOAD_FORMAT_PARQUET}
    results: dict[str, list[Round]] = {name: [] for name in files}
    server = ChainServer()
    try:
        port = await server.start("127.0.0.1:0", rate_limits=False)
        stores = server.stores
        async with AsyncExitStack() as stack:
            channel = await stack.enter_async_context(aio.insecure_channel(f"127.0.0.1:{port}"))
            session = await auth_pb2_grpc.AuthServiceStub(channel).Register(
                auth_pb2.RegisterRequest(
                    email="ingest-bench@example.com",
                    password="Gq7!vR2#mZ9@kL4$",  # noqa: S106 - a throwaway local account
                    name="Bench",
                )
            )
            metadata = (("authorization", f"Bearer {session.session.access_token}"),)
            graphs = graph_pb2_grpc.GraphServiceStub(channel)
            stub = upload_pb2_grpc.UploadServiceStub(channel)
            for file_format, path in [(f, p) for _ in range(rounds) for f, p in files.items()]:
                engine_s, engine_peak = await asyncio.to_thread(
                    measure_engine, path, file_format, work
                )
                graph = await graphs.CreateGraph(
                    graph_pb2.CreateGraphRequest(name=f"bench {file_format}", schema=[_SCHEMA]),
                    metadata=metadata,
                )
                graph_id = graph.graph.graph_id
                created = await stub.CreateUpload(
                    upload_pb2.CreateUploadRequest(
                        graph_id=graph_id,
                        table_name="Item",
                        file_name=path.name,
                        format=formats[file_format],
                        size_bytes=path.stat().st_size,
                    ),
                    metadata=metadata,
                )
                with path.open("rb") as handle:
                    async with httpx.AsyncClient(timeout=600) as http:
                        posted = await http.post(
                            created.url,
                            data=dict(created.form_fields),
                            files={
                                "file": (path.name, handle, created.form_fields["Content-Type"])
                            },
                        )
                posted.raise_for_status()
                upload_id = created.upload.upload_id
                ids = {"graph_id": graph_id, "upload_id": upload_id}
                started = time.perf_counter()
                done = await stub.CompleteUpload(
                    upload_pb2.CompleteUploadRequest(**ids), metadata=metadata, timeout=600
                )
                complete_seconds = time.perf_counter() - started
                if done.upload.state != upload_pb2.UPLOAD_STATE_VALIDATED:
                    raise RuntimeError(f"{file_format} not validated: {done.upload.error}")
                before = psutil.Process().memory_info().rss
                pids = {
                    "server": psutil.Process().pid,
                    "worker": stores.engine.worker_pid(graph_id),
                }
                with PeakSampler(pids).running() as sampler:
                    started = time.perf_counter()
                    messages = [
                        message
                        async for message in stub.IngestUpload(
                            upload_pb2.IngestUploadRequest(**ids), metadata=metadata, timeout=3600
                        )
                    ]
                    elapsed = time.perf_counter() - started
                if not messages or messages[-1].rows_loaded != rows:
                    raise RuntimeError(f"{file_format}: ingest ended with {messages[-1:]}")
                results[file_format].append(
                    Round(
                        engine_seconds=engine_s,
                        engine_peak=engine_peak,
                        ingest_seconds=elapsed,
                        complete_seconds=complete_seconds,
                        server_before=before,
                        server_peak=sampler.peaks["server"],
                        worker_peak=sampler.peaks["worker"],
                    )
                )
                print(
                    f"  {file_format}: engine {engine_s:.2f} s, service {elapsed:.2f} s",
                    file=sys.stderr,
                )
    finally:
        await server.stop(1)
    return results


def _figures(file_format: str, rows: int, size: int, rounds: list[Round]) -> Figures:
    engine_s = median(r.engine_seconds for r in rounds)
    ingest_s = median(r.ingest_seconds for r in rounds)
    return Figures(
        file_format=file_format,
        rows=rows,
        file_mib=size / _MIB,
        engine_seconds=engine_s,
        engine_rows_per_s=rows / engine_s,
        engine_peak_rss_mib=max(r.engine_peak for r in rounds) / _MIB,
        service_seconds=ingest_s,
        service_rows_per_s=rows / ingest_s,
        ratio=median(r.engine_seconds / r.ingest_seconds for r in rounds),
        complete_seconds=median(r.complete_seconds for r in rounds),
        server_rss_before_mib=min(r.server_before for r in rounds) / _MIB,
        server_peak_rss_mib=max(r.server_peak for r in rounds) / _MIB,
        worker_peak_rss_mib=max(r.worker_peak for r in rounds) / _MIB,
    )


def _table(figures: Sequence[Figures]) -> str:
    header = (
        "| format | rows | file MiB | engine s | engine rows/s | service s | service rows/s "
        "| ratio | complete s | server RSS before → peak MiB | worker peak MiB "
        "| engine process peak MiB |"
    )
    lines = [header, "|" + " --- |" * 12]
    for f in figures:
        lines.append(
            f"| {f.file_format} | {f.rows:,} | {f.file_mib:.1f} | {f.engine_seconds:.2f} "
            f"| {f.engine_rows_per_s:,.0f} | {f.service_seconds:.2f} | {f.service_rows_per_s:,.0f} "
            f"| {f.ratio:.2f} | {f.complete_seconds:.2f} "
            f"| {f.server_rss_before_mib:.0f} → {f.server_peak_rss_mib:.0f} "
            f"| {f.worker_peak_rss_mib:.0f} | {f.engine_peak_rss_mib:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; prints a Markdown table. Exit status 0, or 2 on bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per file")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if not 1000 <= args.rows <= 50_000_000 or not 1 <= args.rounds <= 20:
        print("--rows must be in 1000..50,000,000 and --rounds in 1..20", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="graphgate-ingest-bench-") as temporary:
        work = Path(temporary)
        print(f"writing {args.rows:,} rows as CSV and Parquet", file=sys.stderr)
        # In a process of its own, so the Arrow tables never count in this one's memory.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            files = pool.submit(write_files, work, args.rows).result()
        sizes = {name: path.stat().st_size for name, path in files.items()}
        measured = asyncio.run(measure(files, args.rows, work, args.rounds))
    figures = [_figures(name, args.rows, sizes[name], rounds) for name, rounds in measured.items()]
    print(_table(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
