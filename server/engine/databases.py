"""The databases a worker has open: opened lazily, at most K of them, least recently used out.

Each open graph carries what guards it: a FIFO lock that queues its writes
(the engine refuses a second write transaction instead of waiting), a count
of requests using it (it is never closed under one), and a small stack of
connections proven clean (see :mod:`graphgate.server.engine.session`).

Every database gets an explicit buffer pool and ``max_db_size``: the
engine's defaults are 80 % of RAM and 8 TB of address space *per database*.
Opening never creates a graph: a graph exists once :meth:`create` made its
directory, so an unknown id is ``NOT_FOUND`` rather than a new empty file.

Security: graph ids are checked as UUIDs before they become paths
(:mod:`graphgate.server.engine.layout`). Only one ``Database`` per file is
ever alive in the process: a second one on the same path would release the
first one's file lock when closed, so reopening waits for any close in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ladybug

from graphgate.server.engine.failures import engine_failure
from graphgate.server.engine.layout import checked_graph_id, database_path, graph_dir, graphs_root
from graphgate.server.engine.open_graph import OpenGraph
from graphgate.server.errors import AlreadyExists, NotFound

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseSettings:
    """How every database of a worker is opened."""

    buffer_pool_bytes: int
    max_db_bytes: int
    threads_per_query: int


def _not_found() -> NotFound:
    return NotFound(public_message="graph not found", reason="GRAPH_NOT_FOUND")


async def _stop_users(graph: OpenGraph) -> None:
    # A dropped graph's running queries are interrupted rather than awaited to
    # their timeouts; the interrupt is repeated as new statements may start.
    while not graph.idle.is_set():
        for session in list(graph.sessions):
            session.interrupt()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(graph.idle.wait(), 0.05)


class GraphDatabases:
    """The LRU of open databases of one worker. Use from the worker's event loop only."""

    def __init__(self, data_dir: Path, settings: DatabaseSettings, *, max_open: int) -> None:
        self._data_dir = data_dir
        self._settings = settings
        self._max_open = max_open
        self._open: OrderedDict[str, OpenGraph] = OrderedDict()
        self._opening: dict[str, asyncio.Task[OpenGraph]] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._dropping: set[str] = set()

    @property
    def open_count(self) -> int:
        """How many databases are open."""
        return len(self._open)

    @property
    def active_count(self) -> int:
        """How many requests hold an open database (running or queued)."""
        return sum(graph.users for graph in self._open.values())

    @property
    def settings(self) -> DatabaseSettings:
        """How this worker opens databases (a restore's staging database too)."""
        return self._settings

    async def create(self, graph_id: str) -> None:
        """Create a graph's directory and empty database.

        Raises :class:`AlreadyExists` if the graph has a directory already,
        :class:`InvalidArgument` for a bad id. Costs one database open.
        """
        directory = graph_dir(self._data_dir, graph_id)
        graphs_root(self._data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(
                public_message="graph already exists", reason="GRAPH_EXISTS"
            ) from None
        try:
            self.release(await self.acquire(graph_id))
        except BaseException:
            # A graph whose database could not be created must not look created.
            await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)
            raise

    async def acquire(self, graph_id: str) -> OpenGraph:
        """The open database of ``graph_id``, counted as used until :meth:`release`.

        Raises :class:`NotFound` for an unknown or dropping graph,
        :class:`InvalidArgument` for a bad id. Free when open; otherwise one
        open (file lock, WAL replay) in a thread.
        """
        checked_graph_id(graph_id)
        while True:
            if graph_id in self._dropping:
                raise _not_found()
            graph = self._open.get(graph_id)
            if graph is not None:
                if graph.closing:
                    raise _not_found()  # being dropped
                self._open.move_to_end(graph_id)
                graph.use()
                return graph
            closing = self._closing.get(graph_id)
            if closing is not None:
                # Evicted a moment ago: reopen only once its file lock is released.
                await asyncio.gather(asyncio.shield(closing), return_exceptions=True)
                continue
            opening = self._opening.get(graph_id)
            if opening is None:
                path = database_path(self._data_dir, graph_id)
                opening = self._opening[graph_id] = asyncio.create_task(
                    self._open_graph(graph_id, path)
                )
            await asyncio.shield(opening)

    async def _open_graph(self, graph_id: str, path: Path) -> OpenGraph:
        try:
            database = await asyncio.to_thread(self._open_database, path)
        except Exception as error:  # a corrupt file, or its lock held elsewhere
            raise engine_failure(error) from None
        finally:
            del self._opening[graph_id]
        graph = OpenGraph(graph_id, database, self._settings.threads_per_query)
        self._open[graph_id] = graph
        self._evict()
        return graph

    def _open_database(self, path: Path) -> ladybug.Database:
        if not path.parent.is_dir():
            raise _not_found()
        return ladybug.Database(
            path,
            buffer_pool_size=self._settings.buffer_pool_bytes,
            max_db_size=self._settings.max_db_bytes,
            max_num_threads=self._settings.threads_per_query,
            backend="pybind",
        )

    def release(self, graph: OpenGraph) -> None:
        """End one use of ``graph`` (after the engine thread using it finished)."""
        if graph.unuse() == 0:
            self._evict()

    def _evict(self) -> None:
        excess = len(self._open) - self._max_open
        for graph_id, graph in list(self._open.items()):
            if excess <= 0:
                break
            if graph.users == 0 and not graph.closing:
                del self._open[graph_id]
                self._close_soon(graph)
                excess -= 1

    def _close_soon(self, graph: OpenGraph) -> None:
        graph.closing = True
        task = asyncio.create_task(asyncio.to_thread(graph.close))
        self._closing[graph.graph_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._closing.get(graph.graph_id) is done:
                del self._closing[graph.graph_id]
            if not done.cancelled() and done.exception() is not None:
                _log.error("closing graph %s failed", graph.graph_id, exc_info=done.exception())

        task.add_done_callback(forget)

    async def drop(self, graph_id: str) -> None:
        """Close a graph (after its running requests end) and delete its files.

        New requests for the graph get :class:`NotFound` from the start.
        Raises :class:`NotFound` if it does not exist. Costs a close and a
        recursive delete in a thread.
        """
        directory = graph_dir(self._data_dir, graph_id)
        if graph_id in self._dropping or not directory.is_dir():
            raise _not_found()
        self._dropping.add(graph_id)
        try:
            graph = self._open.get(graph_id)
            if graph is not None:
                graph.closing = True
                await _stop_users(graph)
                del self._open[graph_id]
                await asyncio.to_thread(graph.close)
            while graph_id in self._closing or graph_id in self._opening:
                await asyncio.gather(
                    *(t for t in (self._closing.get(graph_id), self._opening.get(graph_id)) if t),
                    return_exceptions=True,
                )
                if (opened := self._open.pop(graph_id, None)) is not None:
                    await _stop_users(opened)
                    await asyncio.to_thread(opened.close)
            await asyncio.to_thread(shutil.rmtree, directory)
        finally:
            self._dropping.discard(graph_id)

    async def replace(
        self, graph_id: str, swap: Callable[[Path], None], *, grace_seconds: float
    ) -> None:
        """Close a graph, run ``swap(directory)`` in a thread, and let it reopen on next use.

        For restores: ``swap`` exchanges the graph's directory with a new one.
        Requests arriving meanwhile wait and then see the new data (never a
        half-swapped graph, never NOT_FOUND); running ones get
        ``grace_seconds`` to finish, then are interrupted. Raises
        :class:`NotFound` for an unknown or dropping graph, and whatever
        ``swap`` raises (the graph then reopens from what ``swap`` left).
        """
        directory = graph_dir(self._data_dir, graph_id)
        while True:
            if graph_id in self._dropping or not directory.is_dir():
                raise _not_found()
            pending = [t for t in (self._closing.get(graph_id), self._opening.get(graph_id)) if t]
            if not pending:
                break
            await asyncio.gather(*pending, return_exceptions=True)
        graph = self._open.pop(graph_id, None)
        failures: list[Exception] = []

        async def offline() -> None:
            # Registered as the graph's close in flight, so acquire() waits for
            # it; it never raises, so waiting requests reopen instead of failing.
            try:
                if graph is not None:
                    graph.closing = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(graph.idle.wait(), grace_seconds)
                    await _stop_users(graph)
                    await asyncio.to_thread(graph.close)
                await asyncio.to_thread(swap, directory)
            except Exception as error:
                failures.append(error)

        task = asyncio.create_task(offline())
        self._closing[graph_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._closing.get(graph_id) is done:
                del self._closing[graph_id]

        task.add_done_callback(forget)
        await asyncio.shield(task)
        if failures:
            raise failures[0]

    async def close(self) -> None:
        """Close every database (call once no request runs). Never raises."""
        graphs = list(self._open.values())
        self._open.clear()
        for graph in graphs:
            try:
                await asyncio.to_thread(graph.close)
            except Exception:
                _log.exception("closing graph %s failed", graph.graph_id)
        if self._closing:
            await asyncio.gather(*self._closing.values(), return_exceptions=True)
