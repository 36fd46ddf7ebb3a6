"""An open database, the queue of its writes and the connections proven clean.

The engine refuses a second write transaction instead of waiting for the
first, so writes to one graph wait here, on a FIFO lock. Connections are
lent to read-only requests only when proven clean (see
:mod:`graphgate.server.engine.session`), at most :data:`MAX_IDLE_CONNECTIONS`
kept, each retired after :data:`MAX_CONNECTION_USES` requests: the engine's
client caches every prepared statement on its connection.
"""

from __future__ import annotations

import asyncio
import threading

import ladybug

from graphgate.server.engine.runner import Interruptible

#: Requests a clean connection may serve before it is closed.
MAX_CONNECTION_USES = 256
#: Clean connections kept per open database.
MAX_IDLE_CONNECTIONS = 8


class OpenGraph:
    """An open database, its write queue and its clean connections."""

    def __init__(self, graph_id: str, database: ladybug.Database, threads: int) -> None:
        self.graph_id = graph_id
        self.database = database
        #: Writes to the graph take this lock, in arrival order.
        self.writes = asyncio.Lock()
        self.users = 0
        #: The requests' engine sessions (typed loosely: sessions import this module).
        self.sessions: set[Interruptible] = set()
        self.closing = False
        self.idle = asyncio.Event()
        self.idle.set()
        self._threads = threads
        self._clean: list[tuple[ladybug.Connection, int]] = []
        self._lock = threading.Lock()

    def use(self) -> None:
        """Count one more request on the graph (event loop only)."""
        self.users += 1
        self.idle.clear()

    def unuse(self) -> int:
        """Count one request less; returns how many remain (event loop only)."""
        self.users -= 1
        if self.users == 0:
            self.idle.set()
        return self.users

    def checkout(self, *, reusable: bool) -> tuple[ladybug.Connection, int]:
        """A connection and its use count (engine thread). Fresh unless ``reusable``."""
        if reusable:
            with self._lock:
                if self._clean:
                    return self._clean.pop()
        return ladybug.Connection(self.database, num_threads=self._threads), 0

    def checkin(self, connection: ladybug.Connection, uses: int, *, clean: bool) -> None:
        """Keep ``connection`` for reuse when proven clean, else close it (engine thread)."""
        if clean and uses < MAX_CONNECTION_USES and not self.closing:
            with self._lock:
                if len(self._clean) < MAX_IDLE_CONNECTIONS:
                    self._clean.append((connection, uses))
                    return
        connection.close()

    def close(self) -> None:
        """Close the kept connections, then the database (engine thread, no user left)."""
        with self._lock:
            kept, self._clean = self._clean, []
        for connection, _ in kept:
            connection.close()
        self.database.close()
