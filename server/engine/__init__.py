"""The isolated graph engine: LadybugDB in supervised worker processes.

:class:`GraphEngine` starts N worker processes, each owning a shard of the
graphs (``graphgate.worker.v1`` over Unix sockets), restarts any that dies,
and exposes typed async calls returning ``graphgate.v1`` messages.
"""

from __future__ import annotations

from graphgate.server.engine.pool import GraphEngine

__all__ = ["GraphEngine"]
