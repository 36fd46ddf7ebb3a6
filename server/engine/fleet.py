"""The set of worker processes and which one owns a graph.

Graphs are sharded by a stable hash of the graph id over N workers
(:func:`~graphgate.server.engine.layout.owner_of`), so each graph has exactly
one owner. Workers listen on Unix sockets in a private 0700 directory under
the data directory, or in a private temporary directory when that path would
not fit in a socket address (108 bytes on Linux).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from graphgate.server.engine.calls import WorkerCalls
from graphgate.server.engine.layout import owner_of
from graphgate.server.engine.supervisor import WorkerProcess
from graphgate.server.errors import FailedPrecondition

# sockaddr_un holds 108 bytes with the terminating NUL; keep a margin.
_MAX_SOCKET_PATH = 100


def _usable_cpus() -> int:
    # The CPUs this process may run on (a container's share), not the machine's.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class WorkerFleet:
    """Starts N supervised workers (default: one per usable CPU) and routes graphs to them."""

    def __init__(
        self,
        data_dir: Path,
        count: int | None,
        worker_args: Sequence[str],
        *,
        python: str,
        env: Mapping[str, str],
        log: Path | None,
        max_message_bytes: int,
        max_rss_bytes: int | None,
        startup_timeout: float,
    ) -> None:
        count = count if count is not None else _usable_cpus()
        if count < 1:
            raise ValueError("workers must be at least 1")
        self._data_dir = data_dir
        self._count = count
        self._argv = [python, "-m", "graphgate.server.engine.worker", *worker_args]
        self._env = env
        self._log = log
        self._max_message_bytes = max_message_bytes
        self._max_rss_bytes = max_rss_bytes
        self._startup_timeout = startup_timeout
        self._workers: list[WorkerProcess] = []
        self._calls: dict[int, tuple[grpc.aio.Channel, WorkerCalls]] = {}
        self._temporary: Path | None = None

    def _socket_dir(self) -> Path:
        run_dir = self._data_dir / "engine"
        if len(str(run_dir / f"w{self._count}.sock")) > _MAX_SOCKET_PATH:
            self._temporary = Path(tempfile.mkdtemp(prefix="graphgate-engine-"))  # 0700
            return self._temporary
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        run_dir.chmod(0o700)  # an existing directory would keep its old mode
        return run_dir

    async def start(self) -> None:
        """Start every worker and wait until each answers. Raises ``RuntimeError`` if one cannot."""
        run_dir = self._socket_dir()
        for index in range(self._count):
            socket = run_dir / f"w{index}.sock"
            argv = [
                *self._argv,
                f"--socket={socket}",
                f"--data-dir={self._data_dir}",
                f"--parent-pid={os.getpid()}",
            ]
            worker = WorkerProcess(
                index,
                argv,
                socket,
                env=self._env,
                log=self._log,
                max_message_bytes=self._max_message_bytes,
                max_rss_bytes=self._max_rss_bytes,
                startup_timeout=self._startup_timeout,
            )
            self._workers.append(worker)
        try:
            await asyncio.gather(*(worker.start() for worker in self._workers))
        except BaseException:
            await self.close(grace=0.0)
            raise

    async def close(self, grace: float) -> None:
        """Stop every worker (each drains for ``grace`` seconds). Never raises."""
        await asyncio.gather(*(w.stop(grace) for w in self._workers), return_exceptions=True)
        self._workers, self._calls = [], {}
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def owner(self, graph_id: str) -> WorkerProcess:
        """The worker owning ``graph_id``. Raises ``InvalidArgument`` for a bad id."""
        if not self._workers:
            raise FailedPrecondition(
                public_message="graph engine not started", reason="ENGINE_STOPPED"
            )
        return self._workers[owner_of(graph_id, len(self._workers))]

    def route(self, graph_id: str) -> tuple[int, WorkerCalls]:
        """The owner's index and calls. Raises :class:`Unavailable` while it restarts."""
        worker = self.owner(graph_id)
        channel = worker.channel()
        cached = self._calls.get(worker.index)
        if cached is None or cached[0] is not channel:
            cached = self._calls[worker.index] = (channel, WorkerCalls(channel))
        return worker.index, cached[1]
