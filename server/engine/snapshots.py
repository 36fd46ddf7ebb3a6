"""A graph's whole data as the engine's own export: written out, and swapped back in.

:func:`export_into` runs ``CHECKPOINT`` then ``EXPORT DATABASE`` on the graph's
open database, queued behind its writes, so the export is one consistent
state. :class:`GraphSnapshots` replaces a graph's data with an export: it
imports the export into a fresh database in a staging directory beside the
graph while the graph keeps serving, then takes the graph offline only for
the close, one atomic directory exchange and nothing else
(:meth:`GraphDatabases.replace`). On any failure the old files are where
they were.

Measured on the engine (LadybugDB 0.22): ``EXPORT`` needs the write-ahead log
checkpointed (un-checkpointed writes live in the buffer pool and the export
then runs out of it), and both ``EXPORT`` and ``IMPORT`` need memory that
grows with the graph (2 M nodes and 2 M relationships: more than 512 MiB of
buffer pool to export, more than 64 MiB to import). A graph whose export does
not fit its buffer pool is refused with ``GRAPH_TOO_LARGE_FOR_BACKUP``. The
staging database of a restore has the same buffer pool as any other, so a
worker holds one more pool than usual while it imports.

Security: the paths come from the API server, never from a user, and are
still checked: absolute, free of quotes and control characters, resolved
inside the data directory and never inside a graph's own files. They reach
the engine as quoted literals in statements the service writes itself;
``EXPORT`` and ``IMPORT`` are refused to every user by the query firewall.
``IMPORT`` runs the Cypher files of the export it reads, so only an export
the server authenticated (a decrypted, verified backup) may be passed in.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import re
import secrets
import shutil
import threading
from pathlib import Path

import ladybug

from graphgate.server.engine.catalog import rows, string_literal
from graphgate.server.engine.databases import DatabaseSettings, GraphDatabases
from graphgate.server.engine.failures import timed_out
from graphgate.server.engine.layout import DATABASE_FILE, graph_dir, graphs_root
from graphgate.server.engine.runner import EngineRunner
from graphgate.server.errors import (
    FailedPrecondition,
    FieldViolation,
    GraphgateError,
    InvalidArgument,
    NotFound,
    Unavailable,
)

_UNSAFE_PATH = re.compile(r"['\\\x00-\x1f\x7f]")
#: ``renameat2`` arguments from <fcntl.h> and <linux/fs.h>.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: How long running requests may finish before a replaced graph interrupts them.
SWAP_GRACE_SECONDS = 5.0


def _refuse(description: str) -> InvalidArgument:
    return InvalidArgument(
        public_message=f"path: {description}",
        reason="INVALID_SNAPSHOT_PATH",
        violations=[FieldViolation("path", description)],
    )


def checked_directory(path: str, data_dir: Path, *, exists: bool) -> Path:
    """``path`` resolved, if it may hold an export: inside ``data_dir``, outside every graph.

    With ``exists`` it must be a directory; without, it must not exist yet
    and its parent must. Raises :class:`InvalidArgument` otherwise. Costs a
    ``realpath`` and a ``stat``.
    """
    candidate = Path(path)
    if not candidate.is_absolute() or _UNSAFE_PATH.search(path) or candidate.name in {"", ".."}:
        raise _refuse("must be an absolute path without quotes or control characters")
    # The parent is resolved (symlinks followed); the last part is checked below.
    resolved = candidate.parent.resolve() / candidate.name
    root = data_dir.resolve()
    if not resolved.is_relative_to(root) or resolved.is_relative_to(graphs_root(root)):
        raise _refuse("must be inside the data directory and outside every graph")
    if exists:
        if resolved.is_symlink() or not resolved.is_dir():
            raise _refuse("must name an export directory")
    elif os.path.lexists(resolved) or not resolved.parent.is_dir():
        raise _refuse("must not exist yet, in an existing directory")
    return resolved


def _failure(
    error: Exception, *, public_message: str, reason: str, kind: type[GraphgateError]
) -> GraphgateError:
    # Engine text names paths: it stays in ``detail`` (the worker's log).
    if isinstance(error, GraphgateError):
        return error
    text = str(error)
    if text.startswith("Interrupted"):
        return timed_out()
    if "Buffer manager exception" in text:
        return FailedPrecondition(
            public_message="the graph is too large to back up or restore within the "
            "engine's memory limit",
            reason="GRAPH_TOO_LARGE_FOR_BACKUP",
            detail=text,
        )
    return kind(public_message=public_message, reason=reason, detail=text)


def export_into(connection: ladybug.Connection, target: Path) -> None:
    """Checkpoint, then ``EXPORT DATABASE`` into ``target`` (engine thread, graph's writes held).

    Removes a partial ``target`` on failure. Raises :class:`FailedPrecondition`
    (``GRAPH_TOO_LARGE_FOR_BACKUP``), :class:`DeadlineExceeded` when
    interrupted, :class:`Unavailable` (``EXPORT_FAILED``) otherwise.
    """
    try:
        # Un-checkpointed writes are held in the buffer pool, which the export
        # needs for itself: without this, even small graphs fail to export.
        rows(connection, "CHECKPOINT")
        rows(connection, f"EXPORT DATABASE {string_literal(str(target))}")
    except Exception as error:
        shutil.rmtree(target, ignore_errors=True)
        raise _failure(
            error,
            public_message="the graph could not be exported",
            reason="EXPORT_FAILED",
            kind=Unavailable,
        ) from None


def exchange(first: Path, second: Path) -> None:
    """Swap two directories atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    Where the call or the file system lacks it, two renames do the same with
    a short window in which ``second`` is missing (never half-written); on
    failure they are undone. Raises ``OSError``.
    """
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        paths = (os.fsencode(first), os.fsencode(second))
        if renameat2(_AT_FDCWD, paths[0], _AT_FDCWD, paths[1], _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), str(second))
    parked = second.with_name(f"{second.name}.swap-{secrets.token_hex(4)}")
    os.rename(second, parked)
    try:
        os.rename(first, second)
    except OSError:
        os.rename(parked, second)
        raise
    os.rename(parked, first)


class Importer:
    """``IMPORT DATABASE`` into a fresh database file, stoppable from any thread."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._connection: ladybug.Connection | None = None
        self._stopped = False

    def interrupt(self) -> None:
        """Stop the import in flight, or keep it from starting (any thread)."""
        with self._lock:
            self._stopped = True
            if self._connection is not None:
                self._connection.interrupt()

    def run(self, database_file: Path, source: Path) -> None:
        """Create ``database_file``, import ``source`` into it and close it (engine thread).

        Raises :class:`FailedPrecondition` (``IMPORT_FAILED``, too large) or
        :class:`DeadlineExceeded`; the caller deletes the staging files.
        """
        settings = self._settings
        try:
            database = ladybug.Database(
                database_file,
                buffer_pool_size=settings.buffer_pool_bytes,
                max_db_size=settings.max_db_bytes,
                max_num_threads=settings.threads_per_query,
                backend="pybind",
            )
            try:
                connection = ladybug.Connection(database, num_threads=settings.threads_per_query)
                try:
                    with self._lock:
                        if self._stopped:
                            raise timed_out()
                        self._connection = connection
                    rows(connection, f"IMPORT DATABASE {string_literal(str(source))}")
                finally:
                    with self._lock:
                        self._connection = None
                    connection.close()
            finally:
                database.close()  # checkpoints: the staging files are complete once this returns
        except Exception as error:
            # An authenticated export that does not import will not on a retry either.
            raise _failure(
                error,
                public_message="the backup could not be imported",
                reason="IMPORT_FAILED",
                kind=FailedPrecondition,
            ) from None


def _sweep(data_dir: Path, graph_id: str) -> None:
    # Staging directories a crashed worker left behind for this graph. Only
    # the owning worker touches them, and only while no restore of it runs.
    for leftover in graphs_root(data_dir).glob(f".restore-{graph_id}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _staging(data_dir: Path, graph_id: str) -> Path:
    # Beside the graph, on the same file system, so the exchange is one rename.
    staging = graphs_root(data_dir) / f".restore-{graph_id}-{secrets.token_hex(8)}"
    staging.mkdir(mode=0o700)
    return staging


class GraphSnapshots:
    """Replaces graphs' data with exports, one restore per graph at a time. Event loop only."""

    def __init__(self, data_dir: Path, databases: GraphDatabases, runner: EngineRunner) -> None:
        self._data_dir = data_dir
        self._databases = databases
        self._runner = runner
        self._replacing: set[str] = set()

    async def replace(self, graph_id: str, path: str, seconds: float) -> None:
        """Replace ``graph_id``'s data with the export at ``path``, atomically.

        ``seconds`` bounds the import; the swap is not cut short once begun.
        Raises :class:`InvalidArgument` (id, path, timeout), :class:`NotFound`,
        :class:`FailedPrecondition` (``RESTORE_IN_PROGRESS``, too large),
        :class:`DeadlineExceeded`, :class:`Unavailable`. Costs one import into
        a fresh database (the graph serves meanwhile) and one close and
        reopen of the graph.
        """
        if seconds <= 0:
            raise InvalidArgument(
                public_message="timeout_ms must be positive", reason="INVALID_LIMITS"
            )
        directory = graph_dir(self._data_dir, graph_id)
        source = checked_directory(path, self._data_dir, exists=True)
        if not directory.is_dir():
            raise NotFound(public_message="graph not found", reason="GRAPH_NOT_FOUND")
        if graph_id in self._replacing:
            raise FailedPrecondition(
                public_message="a restore of this graph is already running",
                reason="RESTORE_IN_PROGRESS",
            )
        self._replacing.add(graph_id)
        try:
            await asyncio.to_thread(_sweep, self._data_dir, graph_id)
            staging = await asyncio.to_thread(_staging, self._data_dir, graph_id)
            try:
                await self._import(staging / DATABASE_FILE, source, seconds)
                # After the exchange the staging directory holds the old data.
                swap = asyncio.ensure_future(
                    self._databases.replace(
                        graph_id,
                        lambda live: exchange(staging, live),
                        grace_seconds=SWAP_GRACE_SECONDS,
                    )
                )
                try:
                    await asyncio.shield(swap)
                except asyncio.CancelledError:
                    # A caller gone mid-swap must not race the removal of the
                    # staging directory against the exchange of its contents.
                    await asyncio.wait({swap})
                    raise
            finally:
                await asyncio.to_thread(shutil.rmtree, staging, True)
        finally:
            self._replacing.discard(graph_id)

    async def _import(self, database_file: Path, source: Path, seconds: float) -> None:
        importer = Importer(self._databases.settings)
        deadline = asyncio.get_running_loop().time() + seconds
        future = self._runner.submit(lambda: importer.run(database_file, source))
        try:
            await self._runner.wait(future, importer, deadline)
        except BaseException:
            # The staging files are deleted next: let the engine thread let go of them first.
            await asyncio.wait({future})
            raise
