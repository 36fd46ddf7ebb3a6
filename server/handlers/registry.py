"""Registers servicers for every RPC of the contract.

Each service of the contract gets one generic handler built from its
descriptor: RPCs the servicer implements (a coroutine or async generator
named like the RPC) are served by it; the others answer UNIMPLEMENTED with a
clear message, so every RPC of the contract is registered from day one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from graphgate.server.contract import MethodInfo, methods
from graphgate.server.errors import NotImplementedYet


def _not_implemented(info: MethodInfo) -> Callable[..., Any]:
    error = NotImplementedYet(
        public_message=f"{info.service}.{info.name} is not implemented yet",
        reason="NOT_IMPLEMENTED",
    )
    if info.server_streaming:

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            raise error
            yield  # pragma: no cover - makes this an async generator

        return stream

    async def unary(request: Any, context: Any) -> Any:
        raise error

    return unary


def service_handlers(servicers: dict[str, object]) -> list[grpc.GenericRpcHandler]:
    """One generic handler per contract service; ``servicers`` maps service full name."""
    by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
    for info in methods().values():
        servicer = servicers.get(info.service)
        behavior = getattr(servicer, info.name, None) or _not_implemented(info)
        make = (
            grpc.unary_stream_rpc_method_handler
            if info.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        by_service.setdefault(info.service, {})[info.name] = make(
            behavior,
            request_deserializer=info.request_type.FromString,
            response_serializer=info.response_type.SerializeToString,
        )
    return [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]
