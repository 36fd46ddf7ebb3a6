"""Queries inside a worker: one statement, bounded, unary or streamed.

A request holds its graph open for its whole life, waits in the graph's write
queue when it may write (until its deadline, then ``DEADLINE_EXCEEDED``), and
gives the write lock back as soon as the engine finished the statement (the
engine commits before it returns a result). Read-only requests run inside
``BEGIN TRANSACTION READ ONLY`` … ``ROLLBACK`` without queueing.

Streams read one batch at a time, and only after the previous batch was
accepted by the transport, so a slow reader holds back the engine instead
of filling memory. The stream deadline covers slow readers too.

Security: the query text and parameters are untrusted and reach the engine
only as a prepared statement with bound values. Limits come from the API
server, never from the query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from graphgate.server.engine import results
from graphgate.server.engine.databases import GraphDatabases
from graphgate.server.engine.failures import engine_failure
from graphgate.server.engine.runner import EngineRunner
from graphgate.server.engine.session import Session
from graphgate.server.engine.values import to_parameters
from graphgate.server.errors import DeadlineExceeded, FieldViolation, InvalidArgument
from graphgate.worker.v1 import worker_pb2

T = TypeVar("T")
Send = Callable[[worker_pb2.StreamQueryResponse], Awaitable[None]]


def _positive(value: int, field: str) -> int:
    if value <= 0:
        raise InvalidArgument(
            public_message=f"{field} must be positive",
            reason="INVALID_LIMITS",
            violations=[FieldViolation(field, "must be positive")],
        )
    return value


def read_only(mode: int) -> bool:
    """Whether the access mode is read-only; an unset mode is refused."""
    if mode == worker_pb2.ACCESS_MODE_READ_ONLY:
        return True
    if mode == worker_pb2.ACCESS_MODE_READ_WRITE:
        return False
    raise InvalidArgument(public_message="access_mode must be set", reason="INVALID_ACCESS_MODE")


@dataclass
class _Request:
    graph_id: str
    query: str
    parameters: dict[str, object]
    read_only: bool
    timeout_ms: int
    row_limit: int
    max_bytes: int

    @classmethod
    def of(cls, r: worker_pb2.ExecuteQueryRequest | worker_pb2.StreamQueryRequest) -> _Request:
        return cls(
            graph_id=r.graph_id,
            query=r.query,
            parameters=to_parameters(r.parameters),
            read_only=read_only(r.access_mode),
            timeout_ms=_positive(r.limits.timeout_ms, "limits.timeout_ms"),
            row_limit=_positive(r.limits.row_limit, "limits.row_limit"),
            max_bytes=_positive(r.limits.max_result_bytes, "limits.max_result_bytes"),
        )


class QueryRunner:
    """Runs ``ExecuteQuery`` and ``StreamQuery`` for one worker."""

    def __init__(
        self, databases: GraphDatabases, runner: EngineRunner, *, literals: Iterable[str]
    ) -> None:
        self._databases = databases
        self._runner = runner
        self._literals = tuple(literals)

    @staticmethod
    async def _open(request: _Request, session: Session, job: Callable[[], T]) -> T:
        if request.read_only:
            return await session.run(job)
        return await session.run_writing(job)

    async def execute(
        self, message: worker_pb2.ExecuteQueryRequest
    ) -> worker_pb2.ExecuteQueryResponse:
        """Run one statement; rows up to the limits. Raises :class:`GraphgateError`."""
        request = _Request.of(message)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_ms / 1000
        graph = await self._databases.acquire(request.graph_id)
        session = Session(self._runner, graph, read_only=request.read_only, deadline=deadline)

        def job() -> worker_pb2.ExecuteQueryResponse:
            started = time.perf_counter()
            result = session.execute(request.query, request.parameters)
            response = worker_pb2.ExecuteQueryResponse(columns=results.columns(result))
            reader = results.RowReader(result, row_limit=request.row_limit)
            reader.read_into(
                response.rows, max_rows=request.row_limit, max_bytes=request.max_bytes, cut=True
            )
            response.row_count = reader.rows_read
            response.truncated = reader.truncated
            session.close()
            response.execution_time_ms = (time.perf_counter() - started) * 1000
            return response

        try:
            response = await self._open(request, session, job)
        except Exception as error:
            raise engine_failure(error, literals=self._literals) from None
        finally:
            session.finish(lambda: self._databases.release(graph))
        return response

    async def stream(self, message: worker_pb2.StreamQueryRequest, send: Send) -> None:
        """Stream one statement's rows through ``send``. Raises :class:`GraphgateError`."""
        request = _Request.of(message)
        batch_rows = _positive(message.batch_rows, "batch_rows")
        stream_seconds = _positive(message.stream_timeout_ms, "stream_timeout_ms") / 1000
        now = asyncio.get_running_loop().time()
        stream_deadline = now + stream_seconds
        deadline = min(stream_deadline, now + request.timeout_ms / 1000)
        graph = await self._databases.acquire(request.graph_id)
        session = Session(self._runner, graph, read_only=request.read_only, deadline=deadline)
        jobs = _StreamJobs(session, request, batch_rows)
        try:
            first = await self._open(request, session, jobs.start)
            session.deadline = stream_deadline
            await _send(send, first, stream_deadline)
            while not jobs.finished:
                part = await session.run(jobs.batch)
                if part.batch.rows:
                    await _send(send, part, stream_deadline)
            await _send(send, jobs.summary(), stream_deadline)
        except ClientGone:
            raise
        except Exception as error:
            raise engine_failure(error, literals=self._literals) from None
        finally:
            session.finish(lambda: self._databases.release(graph))


class _StreamJobs:
    """The engine-thread side of one stream: its reader and its engine time."""

    def __init__(self, session: Session, request: _Request, batch_rows: int) -> None:
        self._session = session
        self._request = request
        self._batch_rows = batch_rows
        self._reader: results.RowReader | None = None
        self._seconds = 0.0

    @property
    def finished(self) -> bool:
        return self._reader is None or self._reader.finished

    def start(self) -> worker_pb2.StreamQueryResponse:
        started = time.perf_counter()
        request, session = self._request, self._session
        result = session.execute(request.query, request.parameters)
        self._reader = results.RowReader(result, row_limit=request.row_limit)
        first = worker_pb2.StreamQueryResponse(columns=results.columns(result))
        self._seconds += time.perf_counter() - started
        return first

    def batch(self) -> worker_pb2.StreamQueryResponse:
        started = time.perf_counter()
        part = worker_pb2.StreamQueryResponse()
        if self._reader is None:
            raise RuntimeError("stream read before it started")
        self._reader.read_into(
            part.batch.rows, max_rows=self._batch_rows, max_bytes=self._request.max_bytes, cut=False
        )
        self._seconds += time.perf_counter() - started
        return part

    def summary(self) -> worker_pb2.StreamQueryResponse:
        last = worker_pb2.StreamQueryResponse()
        if self._reader is not None:
            last.summary.row_count = self._reader.rows_read
            last.summary.truncated = self._reader.truncated
        last.summary.execution_time_ms = self._seconds * 1000
        return last


class ClientGone(Exception):
    """The caller of a stream went away; there is nobody left to answer."""


async def _send(send: Send, message: worker_pb2.StreamQueryResponse, deadline: float) -> None:
    try:
        async with asyncio.timeout_at(deadline):
            await send(message)
    except TimeoutError:
        raise DeadlineExceeded(
            public_message="stream exceeded its time limit", reason="STREAM_TIMEOUT"
        ) from None
    except Exception as error:  # grpc reports a closed call as a failed write
        raise ClientGone from error
