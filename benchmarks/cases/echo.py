"""The gRPC floor: a bare grpc.aio unary echo, alone and behind no-op interceptors.

``echo`` is the baseline every report divides by: the least a grpc.aio server
can do per call (no protobuf, no handler work). ``echo_with_noop_interceptors``
adds five server interceptors that only call the next one, which prices the
interceptor mechanism itself, before any interceptor does real work.

The service is generic (`grpc.method_handlers_generic_handler`), so no
generated code is needed, and bytes travel as they are: a serializer of None
is grpc's identity, cheaper than an identity function it would have to call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc  # type: ignore[import-untyped, unused-ignore]  # no stubs in the dev deps
import grpc.aio  # type: ignore[import-untyped, unused-ignore]

from benchmarks.case import Call, Case, SetupResult
from benchmarks.transports import grpc_channel

__all__ = ["CASES", "NOOP_INTERCEPTORS"]

_SERVICE = "graphgate.bench.v1.EchoService"
_METHOD = f"/{_SERVICE}/Echo"
_PAYLOAD = b"graphgate-bench!"  # 16 bytes: the per-call cost, not bandwidth
_CALL_TIMEOUT_S = 10.0
NOOP_INTERCEPTORS = 5

if TYPE_CHECKING:  # grpc's classes are generic only in the stubs, not at runtime
    _Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


class _NoopInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """Passes every call straight on: what remains is the chain's own cost."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        return await continuation(handler_call_details)


async def _start_echo(address: str, interceptors: list[Any]) -> grpc.aio.Server:
    server = grpc.aio.server(interceptors=interceptors)
    handler = grpc.method_handlers_generic_handler(
        _SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(address)
    await server.start()
    return server


async def echo_server(address: str) -> grpc.aio.Server:
    """A grpc.aio server with only the echo method: the floor."""
    return await _start_echo(address, [])


async def echo_server_with_noop_interceptors(address: str) -> grpc.aio.Server:
    """The same server behind `NOOP_INTERCEPTORS` pass-through interceptors."""
    return await _start_echo(address, [_NoopInterceptor() for _ in range(NOOP_INTERCEPTORS)])


def echo_call(channel: grpc.aio.Channel, setup: SetupResult) -> Call:
    """Binds the unary echo of a fixed 16-byte payload to ``channel``."""
    echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(_METHOD)

    async def call() -> bytes:
        response: bytes = await echo(_PAYLOAD, timeout=_CALL_TIMEOUT_S)
        return response

    return call


CASES: tuple[Case[Any], ...] = (
    Case(
        name="echo",
        summary="bare grpc.aio unary echo, bytes in and out (the baseline)",
        server=echo_server,
        connect=grpc_channel,
        call=echo_call,
    ),
    Case(
        name="echo_with_noop_interceptors",
        summary=f"the echo behind {NOOP_INTERCEPTORS} pass-through server interceptors",
        server=echo_server_with_noop_interceptors,
        connect=grpc_channel,
        call=echo_call,
    ),
)
