"""The worker's gRPC service: each RPC of ``graphgate.worker.v1.WorkerService``.

Handlers are thin: they call the databases, the query runner, the catalog or
the loader, and end a failed call with the status of its
:class:`GraphgateError` (:mod:`graphgate.server.engine.wire`). An unexpected
exception is logged here with its traceback and leaves as a generic INTERNAL.

Security: requests come from the API server over a socket only it can reach
(a 0700 directory); the worker still validates ids, paths, limits and
parameters itself, and never sends ``detail`` or engine text unscrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import grpc
import psutil

from graphgate.server.engine import catalog, loading, snapshots
from graphgate.server.engine.databases import GraphDatabases
from graphgate.server.engine.failures import engine_failure
from graphgate.server.engine.queries import ClientGone, QueryRunner
from graphgate.server.engine.runner import EngineRunner
from graphgate.server.engine.session import Session
from graphgate.server.engine.wire import to_status
from graphgate.server.errors import GraphgateError, InvalidArgument, Unavailable
from graphgate.worker.v1 import worker_pb2, worker_pb2_grpc

T = TypeVar("T")
Context = grpc.aio.ServicerContext[object, object]
_log = logging.getLogger(__name__)

#: Time allowed to read a schema (it has no client-set timeout).
SCHEMA_READ_SECONDS = 30.0


async def _abort(context: Context, error: GraphgateError) -> NoReturn:
    code, details, metadata = to_status(error)
    if error.detail:
        # The engine's full text stays here (C16). A user's own mistakes are routine.
        level = logging.WARNING if isinstance(error, Unavailable) else logging.DEBUG
        _log.log(level, "request failed: %s (%s)", error.reason, error.detail)
    context.set_trailing_metadata(metadata)
    await context.abort(code, details)
    raise AssertionError("abort returned")  # abort always raises


async def _answer(context: Context, work: Awaitable[T]) -> T:
    try:
        return await work
    except GraphgateError as error:
        await _abort(context, error)
    except ClientGone:
        raise
    except Exception:
        _log.exception("worker request failed unexpectedly")
        await _abort(context, GraphgateError(public_message="graph worker error"))


class WorkerService(worker_pb2_grpc.WorkerServiceServicer):
    """Serves one worker's graphs."""

    def __init__(
        self,
        data_dir: Path,
        databases: GraphDatabases,
        runner: EngineRunner,
        *,
        literals: tuple[str, ...],
    ) -> None:
        self._data_dir = data_dir
        self._databases = databases
        self._runner = runner
        self._literals = literals
        self._queries = QueryRunner(databases, runner, literals=literals)
        self._process = psutil.Process()
        self._snapshots = snapshots.GraphSnapshots(data_dir, databases, runner)

    async def CreateDatabase(
        self, request: worker_pb2.CreateDatabaseRequest, context: Context
    ) -> worker_pb2.CreateDatabaseResponse:
        await _answer(context, self._databases.create(request.graph_id))
        return worker_pb2.CreateDatabaseResponse()

    async def DropDatabase(
        self, request: worker_pb2.DropDatabaseRequest, context: Context
    ) -> worker_pb2.DropDatabaseResponse:
        await _answer(context, self._databases.drop(request.graph_id))
        return worker_pb2.DropDatabaseResponse()

    async def ExecuteQuery(
        self, request: worker_pb2.ExecuteQueryRequest, context: Context
    ) -> worker_pb2.ExecuteQueryResponse:
        return await _answer(context, self._queries.execute(request))

    async def StreamQuery(  # type: ignore[override]  # writes through the context
        self, request: worker_pb2.StreamQueryRequest, context: Context
    ) -> None:
        # A caller that went away gets no status: the call is over, the engine is stopped.
        with contextlib.suppress(ClientGone):
            await _answer(context, self._queries.stream(request, context.write))

    async def GetSchema(
        self, request: worker_pb2.GetSchemaRequest, context: Context
    ) -> worker_pb2.GetSchemaResponse:
        async def read(session: Session) -> worker_pb2.GetSchemaResponse:
            tables = await session.run(lambda: catalog.read_schema(session.connection()))
            return worker_pb2.GetSchemaResponse(tables=tables)

        return await _answer(
            context, self._with_graph(request.graph_id, SCHEMA_READ_SECONDS, True, read)
        )

    async def ApplySchema(
        self, request: worker_pb2.ApplySchemaRequest, context: Context
    ) -> worker_pb2.ApplySchemaResponse:
        statements = list(request.statements)

        def apply(session: Session) -> worker_pb2.ApplySchemaResponse:
            connection = session.connection()
            catalog.apply_schema(connection, statements, literals=self._literals)
            return worker_pb2.ApplySchemaResponse(tables=catalog.read_schema(connection))

        async def write(session: Session) -> worker_pb2.ApplySchemaResponse:
            if not statements:
                raise InvalidArgument(public_message="no statements", reason="NO_STATEMENTS")
            return await session.run_writing(lambda: apply(session))

        timeout = request.timeout_ms / 1000
        return await _answer(context, self._with_graph(request.graph_id, timeout, False, write))

    async def LoadFile(  # type: ignore[override]  # writes through the context
        self, request: worker_pb2.LoadFileRequest, context: Context
    ) -> None:
        async def load(session: Session) -> None:
            await loading.load(session, request, self._data_dir, context.write)

        seconds = request.timeout_ms / 1000
        await _answer(context, self._with_graph(request.graph_id, seconds, False, load))

    async def PingWorker(
        self, request: worker_pb2.PingWorkerRequest, context: Context
    ) -> worker_pb2.PingWorkerResponse:
        return worker_pb2.PingWorkerResponse(
            pid=os.getpid(),
            open_databases=self._databases.open_count,
            active_requests=self._databases.active_count,
            rss_bytes=self._process.memory_info().rss,
        )

    async def ExportDatabase(
        self, request: worker_pb2.ExportDatabaseRequest, context: Context
    ) -> worker_pb2.ExportDatabaseResponse:
        async def export() -> None:
            target = snapshots.checked_directory(request.path, self._data_dir, exists=False)

            async def write(session: Session) -> None:
                # Queued behind the graph's writes: the checkpoint and the
                # export see one state, and no write refills the log between them.
                await session.run_writing(
                    lambda: snapshots.export_into(session.connection(), target)
                )

            await self._with_graph(request.graph_id, request.timeout_ms / 1000, False, write)

        await _answer(context, export())
        return worker_pb2.ExportDatabaseResponse()

    async def ReplaceDatabase(
        self, request: worker_pb2.ReplaceDatabaseRequest, context: Context
    ) -> worker_pb2.ReplaceDatabaseResponse:
        await _answer(
            context,
            self._snapshots.replace(request.graph_id, request.path, request.timeout_ms / 1000),
        )
        return worker_pb2.ReplaceDatabaseResponse()

    async def _with_graph(
        self,
        graph_id: str,
        seconds: float,
        read_only: bool,
        work: Callable[[Session], Awaitable[T]],
    ) -> T:
        if seconds <= 0:
            raise InvalidArgument(
                public_message="timeout_ms must be positive", reason="INVALID_LIMITS"
            )
        deadline = asyncio.get_running_loop().time() + seconds
        graph = await self._databases.acquire(graph_id)
        session = Session(self._runner, graph, read_only=read_only, deadline=deadline)
        try:
            return await work(session)
        except GraphgateError:
            raise
        except Exception as error:
            raise engine_failure(error, literals=self._literals) from None
        finally:
            session.finish(lambda: self._databases.release(graph))
