"""One supervised graph worker: its process, its socket, its channel, its restarts.

A worker that exits for any reason (a segfault in the engine, ``kill -9``, the
memory watchdog) is started again at once: after 50 ms, doubling up to 2 s
while it keeps dying young. Its in-flight calls fail with ``UNAVAILABLE``
(the socket closes under them); calls made while it is down are refused with
:class:`Unavailable` and a retry hint instead of waiting. Other workers never
notice. Startup takes about half a second, so a crashed worker's graphs
answer again well within two seconds.

The engine allocates some memory outside its buffer pool that no setting
bounds (``range(1, 10^9)`` builds a list of 8 GB before the timeout can
act), so an optional watchdog kills a worker whose resident memory passes
``max_rss_bytes``; it is then restarted like after a crash.

Security: the worker gets an explicit, minimal environment (nothing of the
API server's secrets or engine switches such as ``LBUG_PYTHON_BACKEND``
leaks into it) and its socket lives in the caller's 0700 directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path

import grpc
import psutil

from graphgate.server.errors import Unavailable
from graphgate.worker.v1 import worker_pb2, worker_pb2_grpc

_log = logging.getLogger(__name__)

#: Restart delays: first, and the cap while a worker keeps dying within :data:`YOUNG_SECONDS`.
FIRST_RESTART_DELAY, MAX_RESTART_DELAY, YOUNG_SECONDS = 0.05, 2.0, 5.0
_WATCH_INTERVAL = 0.25


def channel_options(max_message_bytes: int) -> list[tuple[str, int | str]]:
    """Options of a channel to a worker: big messages, no proxy, its own subchannels."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.enable_http_proxy", 0),
        ("grpc.use_local_subchannel_pool", 1),
    ]


class WorkerProcess:
    """Starts, watches and restarts one worker; hands out its channel while it is up."""

    def __init__(
        self,
        index: int,
        argv: Sequence[str],
        socket: Path,
        *,
        env: Mapping[str, str],
        log: Path | None,
        max_message_bytes: int,
        max_rss_bytes: int | None,
        startup_timeout: float,
    ) -> None:
        self.index = index
        self._argv = list(argv)
        self._socket = socket
        self._env = dict(env)
        self._log_path = log
        self._options = channel_options(max_message_bytes)
        self._max_rss = max_rss_bytes
        self._startup_timeout = startup_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._channel: grpc.aio.Channel | None = None
        self._ready = False
        self._closing = False
        self._delay = FIRST_RESTART_DELAY
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int:
        """The worker's current process id. Raises :class:`Unavailable` while it is down."""
        if self._process is None or not self._ready:
            raise self._down()
        return self._process.pid

    def channel(self) -> grpc.aio.Channel:
        """The channel to the running worker. Raises :class:`Unavailable` while it is down."""
        if self._channel is None or not self._ready:
            raise self._down()
        return self._channel

    def _down(self) -> Unavailable:
        return Unavailable(
            public_message="graph engine temporarily unavailable",
            reason="WORKER_RESTARTING",
            retry_after_seconds=max(0.5, self._delay),
            detail=f"worker {self.index} is not running",
        )

    async def start(self) -> None:
        """Start the worker and wait until it answers. Raises ``RuntimeError`` if it cannot."""
        await self._launch()
        self._spawn_task(self._supervise())
        if self._max_rss is not None:
            self._spawn_task(self._watch_memory(self._max_rss))

    def _spawn_task(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _launch(self) -> None:
        output = self._log_path.open("ab") if self._log_path is not None else None
        try:
            process = self._process = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT if output is not None else None,
                env=self._env,
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()
        channel = grpc.aio.insecure_channel(f"unix:{self._socket}", options=self._options)
        try:
            await self._wait_ready(process, worker_pb2_grpc.WorkerServiceStub(channel))
        except BaseException:
            # Never leave a half-started worker behind: the next launch would race it.
            await channel.close()
            await _kill(process)
            raise
        self._channel = channel
        self._ready = True
        _log.info("graph worker %d running as pid %d", self.index, process.pid)

    async def _wait_ready(
        self, process: asyncio.subprocess.Process, stub: worker_pb2_grpc.WorkerServiceAsyncStub
    ) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"graph worker {self.index} did not start (exit {process.returncode})"
                )
            try:
                await stub.PingWorker(
                    worker_pb2.PingWorkerRequest(), timeout=0.25, wait_for_ready=True
                )
                return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.02)

    async def _supervise(self) -> None:
        while not self._closing:
            process = self._process
            if process is None:  # start() launches before supervising; never true
                return
            started = time.monotonic()
            code = await process.wait()
            if self._closing:
                return
            self._ready = False
            self._retire(self._channel)
            cause = f"signal {-code}" if code < 0 else f"exit {code}"
            _log.error(
                "graph worker %d (pid %d) died: %s; restarting", self.index, process.pid, cause
            )
            young = time.monotonic() - started < YOUNG_SECONDS
            self._delay = min(MAX_RESTART_DELAY, self._delay * 2) if young else FIRST_RESTART_DELAY
            while not self._closing:
                await asyncio.sleep(self._delay)
                try:
                    await self._launch()
                    break
                except (RuntimeError, OSError):
                    _log.exception("graph worker %d failed to restart", self.index)
                    self._delay = min(MAX_RESTART_DELAY, self._delay * 2)

    def _retire(self, channel: grpc.aio.Channel | None) -> None:
        # In-flight calls fail with UNAVAILABLE as the socket closes; closing the
        # channel at once would turn them into CANCELLED, so it closes a little later.
        self._channel = None
        if channel is not None:

            async def close_later() -> None:
                try:
                    await asyncio.sleep(1.0)
                finally:  # on stop() too
                    await channel.close()

            self._spawn_task(close_later())

    async def _watch_memory(self, limit: int) -> None:
        while not self._closing:
            await asyncio.sleep(_WATCH_INTERVAL)
            process = self._process
            if process is None or process.returncode is not None or not self._ready:
                continue
            try:
                rss = psutil.Process(process.pid).memory_info().rss
            except psutil.Error:
                continue
            if rss > limit:
                _log.error(
                    "graph worker %d uses %d bytes (limit %d): killing it", self.index, rss, limit
                )
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)

    async def stop(self, grace: float) -> None:
        """Stop the worker: SIGTERM (it drains), SIGKILL after ``grace`` + 3 s. Never raises."""
        self._closing = True
        self._ready = False
        # Supervision stops first, so no restart can race the shutdown.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace + 3.0)
            except TimeoutError:
                await _kill(process)
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
