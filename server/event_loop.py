"""The event loop every graphgate process runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where installed, else None (asyncio's default).

    uvloop saves about 15 % of CPU per call in the API server, and more in a
    graph worker, whose every query hops to an engine thread and back.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop
