"""One request's engine work: one connection, a fresh transaction state, jobs one at a time.

Transaction state never crosses requests. The engine silently ends a
transaction on binder and runtime errors (parser errors leave it open),
after which the next statement on that connection auto-commits, and its
client caches prepared statements per connection, failed ones included. So
a connection is reused only when it is *proven clean*: it served a
read-only request whose own ``ROLLBACK`` succeeded (the transaction it
opened was still the one open) and nothing failed. Every write, failure or
interrupted call ends its connection. A fresh connection costs about 0.2 ms
more (its statements are compiled again), which is why clean ones are kept.

Every statement goes through the engine's prepared path (a sentinel
parameter forces it), which refuses more than one statement: a second wall
behind the firewall's statement count.

Security: this code runs user queries. Its frames hold only the query text,
plain parameter values and engine objects, never a DataFrame or Arrow table:
the engine's client resolves bare names in ``LOAD FROM x`` against the
calling frames.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import ladybug

from graphgate.server.engine.failures import timed_out
from graphgate.server.engine.open_graph import OpenGraph
from graphgate.server.engine.runner import EngineRunner
from graphgate.server.errors import DeadlineExceeded, InvalidArgument

T = TypeVar("T")

#: A parameter no statement uses: its presence makes the client prepare the statement.
ONE_STATEMENT = "graphgate.one_statement"


def single(result: ladybug.QueryResult | list[ladybug.QueryResult]) -> ladybug.QueryResult:
    """The one result of a statement; refuses several (the prepared path already does)."""
    if isinstance(result, list):
        for part in result:
            part.close()
        raise InvalidArgument(
            public_message="exactly one statement is allowed per query",
            reason="MULTIPLE_STATEMENTS",
        )
    return result


class Session:
    """The engine work of one request on ``graph``; create, run jobs, then :meth:`finish`."""

    def __init__(
        self, runner: EngineRunner, graph: OpenGraph, *, read_only: bool, deadline: float
    ) -> None:
        self.graph = graph
        self.read_only = read_only
        self.deadline = deadline
        self._runner = runner
        self._connection: ladybug.Connection | None = None
        self._uses = 0
        self._result: ladybug.QueryResult | None = None
        self._transaction = False
        self._failed = False
        self._last: asyncio.Future[Any] | None = None
        self._closed = False
        self._stopped = False
        self._lock = threading.Lock()
        graph.sessions.add(self)

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` in an engine thread, after the previous job, until the deadline.

        Raises what the job raises, :class:`DeadlineExceeded` at the deadline
        (the engine is interrupted), or ``CancelledError`` (likewise).
        """
        if self._last is not None and not self._last.done():
            await asyncio.wait({self._last})
        future = self._runner.submit(lambda: self._guarded(job))
        self._last = future
        return await self._runner.wait(future, self, self.deadline)

    async def run_writing(self, job: Callable[[], T]) -> T:
        """Like :meth:`run`, queued first behind the graph's other writes, in arrival order.

        The engine refuses a second write transaction instead of waiting, so
        writes wait here. The queue is left once the engine thread finished
        (not when the caller stops waiting). Raises :class:`DeadlineExceeded`
        if the deadline passes in the queue.
        """
        writes = self.graph.writes
        try:
            async with asyncio.timeout_at(self.deadline):
                await writes.acquire()
        except TimeoutError:
            raise DeadlineExceeded(
                public_message="timed out waiting for earlier writes to the graph",
                reason="WRITE_QUEUE_TIMEOUT",
            ) from None
        try:
            return await self.run(job)
        finally:
            self.after_current(writes.release)

    def _guarded(self, job: Callable[[], T]) -> T:
        try:
            # A job that waited for a thread past its deadline, or after the
            # request was stopped, must not start its engine work at all.
            if self._stopped or time.monotonic() >= self.deadline:
                raise timed_out()
            return job()
        except BaseException:
            self._failed = True
            raise

    def interrupt(self) -> None:
        """Stop the engine call in flight, and any job not started yet (any thread)."""
        with self._lock:
            self._stopped = True
            if self._connection is not None:
                self._connection.interrupt()

    def after_current(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop once no engine thread works for this session."""
        if self._last is None or self._last.done():
            callback()
        else:
            self._last.add_done_callback(lambda _: callback())

    # Jobs below run in an engine thread.

    def connection(self) -> ladybug.Connection:
        """The session's connection, checked out on first use, its timeout set to the deadline.

        The engine's own timeout is a second wall behind the interrupt: it
        acts even if the worker's event loop were stuck.
        """
        if self._connection is None:
            connection, self._uses = self.graph.checkout(reusable=self.read_only)
            with self._lock:
                self._connection = connection
            if self.read_only:
                connection.execute("BEGIN TRANSACTION READ ONLY")
                self._transaction = True
        # The loop's clock is time.monotonic(), so the deadline reads the same here.
        left_ms = int((self.deadline - time.monotonic()) * 1000)
        self._connection.set_query_timeout(max(1, left_ms))
        return self._connection

    def execute(self, query: str, parameters: Mapping[str, object]) -> ladybug.QueryResult:
        """Run one statement with bound parameters; the result stays open for fetching."""
        connection = self.connection()
        result = single(connection.execute(query, {**parameters, ONE_STATEMENT: 0}))
        if self._result is not None:
            self._result.close()
        self._result = result
        return result

    def close(self) -> None:
        """Close the result, roll back, and keep or close the connection; idempotent.

        Called at the end of the last job when the work is complete (no thread
        hop, and the connection is back in the pool before the answer leaves),
        else by :meth:`finish`.
        """
        if self._closed:
            return
        self._closed = True
        if self._result is not None:
            self._result.close()
        connection = self._connection
        if connection is None:
            return
        clean = not self._failed
        if self._transaction:
            try:
                connection.execute("ROLLBACK")
            except RuntimeError:
                clean = False  # our transaction had already ended: the state is unknown
        with self._lock:
            self._connection = None
        self.graph.checkin(connection, self._uses + 1, clean=clean and self.read_only)

    def finish(self, on_done: Callable[[], None]) -> None:
        """Roll back and return the connection once the last job's thread ends, then ``on_done``.

        Safe to call from a cancelled task: the cleanup runs in the background.
        """

        def done() -> None:
            self.graph.sessions.discard(self)
            on_done()

        if self._closed and (self._last is None or self._last.done()):
            done()
            return

        async def cleanup() -> None:
            try:
                if self._last is not None and not self._last.done():
                    await asyncio.wait({self._last})
                if not self._closed:
                    await asyncio.wait({self._runner.submit(self.close)})
            finally:
                done()

        self._runner.spawn(cleanup())
