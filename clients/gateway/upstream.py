"""The one shared ``grpc.aio`` channel to the graphgate server, and deadlines.

One channel (one HTTP/2 connection, multiplexed) serves every request of the
sidecar, as a gRPC client should. It is opened on the event loop that serves
requests (lazily, or by the app's lifespan) and closed at shutdown. The
per-RPC callables are built once and reused.

Deadlines: a client may send ``Grpc-Timeout`` (gRPC's format: ``500m``,
``10S``); otherwise the sidecar's default applies. Either is capped by
``max_timeout_seconds``, so no HTTP client can hold an upstream call open
longer than the operator allows.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import grpc
from grpc import aio

from graphgate.clients.gateway.bindings import HttpBinding
from graphgate.clients.gateway.options import GatewayOptions

_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_USER_AGENT = "graphgate-gateway"


class BadTimeout(ValueError):
    """``Grpc-Timeout`` is not in gRPC's ``<digits><unit>`` format."""


def call_timeout(header: str | None, options: GatewayOptions, *, streaming: bool) -> float:
    """Seconds the upstream call may take; raises :class:`BadTimeout`."""
    if header is None:
        wanted = options.stream_timeout_seconds if streaming else options.default_timeout_seconds
    else:
        found = _TIMEOUT.fullmatch(header.strip())
        if found is None:
            raise BadTimeout("Grpc-Timeout must look like 500m or 10S")
        wanted = int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    return max(0.001, min(wanted, options.max_timeout_seconds))


class Upstream:
    """The shared channel and one multi-callable per RPC.

    Not thread-safe: it belongs to the event loop that serves the sidecar.
    """

    def __init__(self, options: GatewayOptions) -> None:
        self._options = options
        self._channel: aio.Channel | None = None
        self._callables: dict[str, Any] = {}

    def _open(self) -> aio.Channel:
        if self._channel is None:
            self._channel = aio.insecure_channel(
                self._options.upstream,
                options=[
                    ("grpc.primary_user_agent", _USER_AGENT),
                    ("grpc.max_send_message_length", self._options.body_limit + 65536),
                    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                    ("grpc.keepalive_time_ms", 60_000),
                    ("grpc.keepalive_timeout_ms", 20_000),
                ],
            )
            self._callables.clear()
        return self._channel

    def callable_for(self, binding: HttpBinding) -> Any:
        """The unary-unary or unary-stream callable of ``binding``'s RPC."""
        rpc = binding.rpc
        found = self._callables.get(rpc.full_method)
        if found is None:
            channel = self._open()
            make = channel.unary_stream if rpc.server_streaming else channel.unary_unary
            found = make(
                rpc.full_method,
                request_serializer=rpc.request_type.SerializeToString,
                response_deserializer=rpc.response_type.FromString,
            )
            self._callables[rpc.full_method] = found
        return found

    async def start(self) -> None:
        """Open the channel now (on the serving loop); connecting stays lazy."""
        self._open()

    async def ready(self, within: float) -> bool:
        """True when the channel connects within ``within`` seconds."""
        channel = self._open()
        try:
            async with asyncio.timeout(within):
                await channel.channel_ready()
        except (TimeoutError, grpc.RpcError):
            return False
        return True

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls in flight get ``grace`` seconds."""
        channel, self._channel = self._channel, None
        self._callables.clear()
        if channel is not None:
            await channel.close(grace)
