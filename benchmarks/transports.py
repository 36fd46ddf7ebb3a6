"""Client connections a case's ``connect`` can name.

Only gRPC today. A REST-sidecar case adds an ``http_client(address)`` here
(an `httpx.AsyncClient` whose calls raise `benchmarks.case.CallFailed` on a
non-2xx status) and names it; nothing else in the harness changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc.aio  # type: ignore[import-untyped, unused-ignore]  # no stubs in the dev deps

__all__ = ["grpc_channel"]

_READY_TIMEOUT_S = 10.0


@asynccontextmanager
async def grpc_channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    """Opens one plaintext channel to a loopback ``address`` and waits until it connects.

    One channel (one HTTP/2 connection) for all in-flight calls is how a real
    client uses gRPC, and waiting for readiness keeps connection set-up out of
    the warm-up. Raises `TimeoutError` if the server does not answer in 10 s.
    """
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), _READY_TIMEOUT_S)
        yield channel
