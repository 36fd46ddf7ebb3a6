"""The server under test, in a process of its own.

A separate process gives the server its own GIL and event loop (as in
production) and lets the load generator read the server's CPU time alone.
The child picks a free loopback port, awaits the case's factory, reports the
address and then serves until the harness asks it to stop or goes away (the
pipe reads end-of-file when the harness dies, so an orphaned server stops too).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import traceback
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import uvloop

from benchmarks._process import (
    SPAWN,
    ChildError,
    ChildFailed,
    ignore_sigint,
    receive,
    stop_process,
)
from benchmarks.case import Case, RunningServer, import_path, load_function

__all__ = ["ServerProcess"]

_STOP_GRACE_S = 1.0
"""Seconds in-flight calls get once the load generator has finished."""

_STOP = "stop"


class ServerProcess:
    """Runs a case's server in a spawned process for the duration of a ``with`` block.

    Entering starts the process and waits until the factory has returned (at
    most ``case.start_timeout`` seconds); `ChildError` carries the child's
    traceback if it failed. Leaving always stops it, including on Ctrl-C:
    graceful stop first, then terminate, then kill, descendants included.
    """

    def __init__(self, case: Case[Any]) -> None:
        self._case = case
        self._conn, child_end = SPAWN.Pipe()
        self._process = SPAWN.Process(
            target=_serve_in_child,
            args=(import_path(case.server), child_end),
            name=f"bench-server-{case.name}",
        )
        self._child_end = child_end
        self.address = ""
        """``127.0.0.1:<port>`` the server listens on, once entered."""

    @property
    def pid(self) -> int:
        """The server process id (its CPU time, with its descendants', is measured)."""
        assert self._process.pid is not None, "the server process has not started"
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self._process.start()
        # Only the child may hold its end: then a dead child reads as EOF here.
        self._child_end.close()
        try:
            ready = receive(
                self._conn, self._process, timeout=self._case.start_timeout, role="server"
            )
            if not isinstance(ready, str):
                raise ChildError(f"server process sent {ready!r}, expected its address")
            self.address = ready
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        with contextlib.suppress(OSError):  # the child is gone already; it is reaped below
            self._conn.send(_STOP)
        stop_process(self._process, grace=_STOP_GRACE_S + 5.0)
        self._conn.close()


def _serve_in_child(factory_path: str, conn: Connection) -> None:
    """Process entry point: serve until told to stop or the harness goes away."""
    ignore_sigint()
    try:
        uvloop.run(_serve(factory_path, conn))
    finally:
        conn.close()


async def _serve(factory_path: str, conn: Connection) -> None:
    try:
        factory = load_function(factory_path)
        address = f"127.0.0.1:{_free_loopback_port()}"
        server: RunningServer = await factory(address)
    except Exception:
        conn.send(ChildFailed("server", traceback.format_exc()))
        return
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Readable means either the stop message or EOF (harness gone): both mean stop.
    loop.add_reader(conn.fileno(), stopping.set)
    conn.send(address)
    try:
        await stopping.wait()
    finally:
        loop.remove_reader(conn.fileno())
        await server.stop(_STOP_GRACE_S)


def _free_loopback_port() -> int:
    """A port the kernel just handed out on 127.0.0.1.

    The factory contract takes an address, so the port is chosen before the
    factory binds it; the gap is microseconds on loopback.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
