"""``GraphEngine``: the API server's handle on its supervised graph workers.

Each graph belongs to one of N worker processes (:mod:`.fleet`); a call goes
to that worker over its Unix socket (``graphgate.worker.v1``, the protocol a
remote worker would speak over TCP) and its answer is parsed straight into
the public ``graphgate.v1`` message (:mod:`.calls`).

Every method raises only :class:`GraphgateError`: what the worker raised
(``InvalidArgument`` with a scrubbed engine message, ``QueryRefused``,
``DeadlineExceeded``, ``NotFound``…), or :class:`Unavailable` with a retry
hint when the owning worker is down or died during the call; other graphs'
workers are not affected.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import grpc

from graphgate.server.engine.calls import WorkerCalls, file_format_of, fill_query, milliseconds
from graphgate.server.engine.fleet import WorkerFleet
from graphgate.server.engine.wire import from_status
from graphgate.server.errors import GraphgateError
from graphgate.v1 import common_pb2, graph_pb2
from graphgate.worker.v1 import worker_pb2

T = TypeVar("T")
MIB = 1024 * 1024
#: Extra time a call may take over the worker's own timeout before the client gives up.
_MARGIN_SECONDS = 2.0


class GraphEngine:
    """Supervised graph workers and typed calls to them; ``start()``, use, ``close()``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int | None = None,
        buffer_pool_bytes: int = 64 * MIB,
        max_db_bytes: int = 4096 * MIB,
        max_open_databases: int = 8,
        max_concurrent_queries: int = 8,
        threads_per_query: int = 1,
        max_message_bytes: int = 64 * MIB,
        max_worker_rss_bytes: int | None = None,
        stream_batch_bytes: int = MIB,
        worker_log: Path | None = None,
        worker_env: Mapping[str, str] | None = None,
        startup_timeout_seconds: float = 30.0,
        python: str = sys.executable,
    ) -> None:
        """Configure; nothing starts yet. ``workers`` defaults to the usable CPU count.

        A worker keeps up to ``max_open_databases`` open, each with its own
        ``buffer_pool_bytes`` (which also bounds one result) and
        ``max_db_bytes`` of address space (a power of two ≥ 8 MiB; the most
        a graph may grow to). ``max_worker_rss_bytes`` arms a watchdog that
        restarts a worker past that size. Workers get only ``worker_env``
        and write to ``worker_log`` (default: stderr). ``ValueError`` for
        ``workers < 1``.
        """
        self._data_dir = data_dir.resolve()
        self._max_message_bytes = max_message_bytes
        self._batch_bytes = stream_batch_bytes
        settings = [
            f"--buffer-pool-bytes={buffer_pool_bytes}",
            f"--max-db-bytes={max_db_bytes}",
            f"--max-open-databases={max_open_databases}",
            f"--max-concurrent-queries={max_concurrent_queries}",
            f"--threads-per-query={threads_per_query}",
            f"--max-message-bytes={max_message_bytes}",
        ]
        self._fleet = WorkerFleet(
            self._data_dir,
            workers,
            settings,
            python=python,
            env=worker_env if worker_env is not None else {"PYTHONUNBUFFERED": "1"},
            log=worker_log,
            max_message_bytes=max_message_bytes,
            max_rss_bytes=max_worker_rss_bytes,
            startup_timeout=startup_timeout_seconds,
        )

    @property
    def data_dir(self) -> Path:
        """The resolved data directory; files to :meth:`bulk_load` must be inside it."""
        return self._data_dir

    async def start(self) -> None:
        """Start every worker; about half a second. Raises ``RuntimeError`` if one cannot start."""
        await self._fleet.start()

    async def close(self, grace: float = 2.0) -> None:
        """Stop every worker (each drains for ``grace`` seconds). Never raises."""
        await self._fleet.close(grace)

    async def _call(self, graph_id: str, call: Callable[[WorkerCalls], Awaitable[T]]) -> T:
        index, calls = self._fleet.route(graph_id)
        try:
            return await call(calls)
        except grpc.aio.AioRpcError as error:
            raise from_status(error, worker=index) from None

    def worker_pid(self, graph_id: str) -> int:
        """The pid of the worker owning ``graph_id``; :class:`Unavailable` while it restarts."""
        return self._fleet.owner(graph_id).pid

    async def ping(self, graph_id: str) -> worker_pb2.PingWorkerResponse:
        """What the owning worker is doing: pid, open databases, active requests, RSS."""
        request = worker_pb2.PingWorkerRequest()
        return await self._call(graph_id, lambda c: c.ping(request, timeout=5.0))

    async def create_database(self, graph_id: str) -> None:
        """Create a graph's empty database. Raises ``AlreadyExists``, ``InvalidArgument``."""
        request = worker_pb2.CreateDatabaseRequest(graph_id=graph_id)
        await self._call(graph_id, lambda c: c.create_database(request, timeout=60.0))

    async def drop_database(self, graph_id: str) -> None:
        """Delete a graph's files once its running requests end. Raises ``NotFound``."""
        request = worker_pb2.DropDatabaseRequest(graph_id=graph_id)
        await self._call(graph_id, lambda c: c.drop_database(request, timeout=300.0))

    async def export_database(
        self, graph_id: str, target: Path, *, timeout_seconds: float = 600.0
    ) -> None:
        """Write the engine's export of a graph into the new directory ``target``.

        ``target`` must be inside :attr:`data_dir`, outside every graph, and
        not exist yet (its parent must). The export waits for the graph's
        earlier writes and holds later ones back while it runs. Raises
        ``InvalidArgument`` (path), ``NotFound``, ``FailedPrecondition``
        (``GRAPH_TOO_LARGE_FOR_BACKUP``: the export needs more than the
        graph's buffer pool), ``DeadlineExceeded``, ``Unavailable``.
        """
        request = worker_pb2.ExportDatabaseRequest(
            graph_id=graph_id, path=str(target), timeout_ms=milliseconds(timeout_seconds)
        )
        timeout = timeout_seconds + _MARGIN_SECONDS
        await self._call(graph_id, lambda c: c.export_database(request, timeout=timeout))

    async def replace_database(
        self, graph_id: str, source: Path, *, timeout_seconds: float = 1800.0
    ) -> None:
        """Replace a graph's data with the export in ``source``, atomically.

        The export is imported into a fresh database while the graph serves;
        then the graph closes (running requests get a few seconds, then are
        interrupted), its directory is exchanged with the new one and it
        reopens on next use. On any failure the old data stays. ``source``
        must be an export directory inside :attr:`data_dir` written by
        :meth:`export_database` and authenticated by the caller: the engine
        runs the Cypher files in it. Raises ``InvalidArgument``, ``NotFound``,
        ``FailedPrecondition`` (``RESTORE_IN_PROGRESS``, too large),
        ``DeadlineExceeded``, ``Unavailable``.
        """
        request = worker_pb2.ReplaceDatabaseRequest(
            graph_id=graph_id, path=str(source), timeout_ms=milliseconds(timeout_seconds)
        )
        # The swap after the import is not cut short by the worker: allow for it.
        timeout = timeout_seconds + 30.0
        await self._call(graph_id, lambda c: c.replace_database(request, timeout=timeout))

    async def execute(
        self,
        graph_id: str,
        query: str,
        parameters: Mapping[str, common_pb2.Value],
        *,
        read_only: bool,
        timeout_seconds: float,
        row_limit: int,
        max_result_bytes: int,
    ) -> graph_pb2.ExecuteQueryResponse:
        """Run one statement; rows up to ``row_limit`` and ``max_result_bytes``, then ``truncated``.

        ``query_class`` is left unset for the caller. Costs one local gRPC
        round trip (about 1 ms with the engine's own work for a trivial
        query). Raises ``InvalidArgument`` (syntax, binding, parameters, more
        than one statement), ``QueryRefused`` (a write when ``read_only``),
        ``DeadlineExceeded``, ``FailedPrecondition`` (result larger than the
        buffer pool), ``NotFound``, ``Unavailable``.
        """
        request = worker_pb2.ExecuteQueryRequest(graph_id=graph_id, query=query)
        limit = min(max_result_bytes, self._max_message_bytes // 2)  # one message, with room
        fill_query(request, parameters, read_only, timeout_seconds, row_limit, limit)
        timeout = timeout_seconds + _MARGIN_SECONDS
        return await self._call(graph_id, lambda c: c.execute(request, timeout=timeout))

    async def stream(
        self,
        graph_id: str,
        query: str,
        parameters: Mapping[str, common_pb2.Value],
        *,
        read_only: bool,
        timeout_seconds: float,
        row_limit: int,
        batch_rows: int = 1000,
        stream_timeout_seconds: float | None = None,
    ) -> AsyncGenerator[graph_pb2.StreamQueryResponse, None]:
        """Stream one statement: the columns, row batches, then a summary (query class unset).

        Memory stays bounded: the worker reads a batch (``batch_rows`` rows or
        about ``stream_batch_bytes``) only once the previous one is taken.
        When the consumer stops (``aclose()``, or drops the generator) the
        engine work is cancelled. ``timeout_seconds`` bounds the work before
        the first row, ``stream_timeout_seconds`` (default ``max(timeout, 600)``)
        the whole stream. Raises like :meth:`execute`, from the iteration.
        """
        total = stream_timeout_seconds or max(timeout_seconds, 600.0)
        request = worker_pb2.StreamQueryRequest(
            graph_id=graph_id,
            query=query,
            batch_rows=batch_rows,
            stream_timeout_ms=milliseconds(total),
        )
        fill_query(request, parameters, read_only, timeout_seconds, row_limit, self._batch_bytes)
        index, calls = self._fleet.route(graph_id)
        call = calls.stream(request, timeout=total + _MARGIN_SECONDS)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as error:
            raise from_status(error, worker=index) from None
        finally:
            call.cancel()  # a no-op after the end; otherwise the worker interrupts the engine

    async def get_schema(self, graph_id: str) -> list[graph_pb2.Table]:
        """The graph's node and relationship tables by name. Raises ``NotFound``."""
        request = worker_pb2.GetSchemaRequest(graph_id=graph_id)
        response = await self._call(graph_id, lambda c: c.get_schema(request, timeout=35.0))
        return list(response.tables)

    async def apply_schema(
        self, graph_id: str, statements: Sequence[str], *, timeout_seconds: float = 60.0
    ) -> list[graph_pb2.Table]:
        """Run schema statements in one transaction, all or nothing; returns the new schema.

        Raises ``InvalidArgument`` naming the first failing statement (or the
        first that is not DDL), ``DeadlineExceeded``, ``NotFound``, ``Unavailable``.
        """
        request = worker_pb2.ApplySchemaRequest(
            graph_id=graph_id, statements=statements, timeout_ms=milliseconds(timeout_seconds)
        )
        timeout = timeout_seconds + _MARGIN_SECONDS
        response = await self._call(graph_id, lambda c: c.apply_schema(request, timeout=timeout))
        return list(response.tables)

    async def bulk_load(
        self,
        graph_id: str,
        table: str,
        path: Path,
        file_format: str,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        timeout_seconds: float = 3600.0,
    ) -> int:
        """COPY the worker-local file ``path`` into ``table``, all or nothing; returns rows loaded.

        ``path`` must be inside :attr:`data_dir` (a server-named upload);
        ``file_format`` is ``csv`` (with a header line), ``parquet`` or
        ``json``. ``on_progress(bytes_done, bytes_total)`` is called before
        and after the engine's COPY (it reports nothing in between). Raises
        ``InvalidArgument`` (path, format, data), ``NotFound`` (table),
        ``DeadlineExceeded``, ``Unavailable``.
        """
        request = worker_pb2.LoadFileRequest(
            graph_id=graph_id,
            table=table,
            path=str(path),
            file_format=file_format_of(file_format),
            timeout_ms=milliseconds(timeout_seconds),
        )
        index, calls = self._fleet.route(graph_id)
        call = calls.load_file(request, timeout=timeout_seconds + _MARGIN_SECONDS)
        try:
            async for message in call:
                if message.HasField("progress"):
                    if on_progress is not None:
                        on_progress(message.progress.bytes_done, message.progress.bytes_total)
                else:
                    return int(message.rows_loaded)
        except grpc.aio.AioRpcError as error:
            raise from_status(error, worker=index) from None
        finally:
            call.cancel()
        raise GraphgateError(detail="load ended without a result")
