"""The one place that knows the four gRPC handler kinds.

A chain link subclasses :class:`Link` and overrides three hooks:

- ``enter(request, context, full_method)`` before the handler runs
  (``request`` is None for client-streaming calls); it may raise to refuse
  the call;
- ``respond(context)`` right before the first response leaves (initial
  metadata can still be sent);
- ``exit(context, error)`` when the call is over, with the exception that
  ended it (None on success); it may raise a replacement exception.

Rejections must happen inside the wrapped handler, never in
``intercept_service`` itself: grpc.aio sends the message of an exception
raised there to the client verbatim.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc
from grpc import aio

from graphgate.interceptors.selector import Selector, every_method

#: The servicer context of any call.
Context: TypeAlias = "aio.ServicerContext[Any, Any]"
# Quoted: grpcio's classes are generic only in their type stubs.
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]]"


class Link(aio.ServerInterceptor):
    """Base of every interceptor of the chain: override the hooks you need."""

    def __init__(self, *, selector: Selector = every_method) -> None:
        self._selector = selector
        # Method -> (inner handler, wrapped handler). grpc resolves the same
        # registered handler for a method every time, and every link caches,
        # so each wrapper is built once per method instead of once per call.
        self._wrapped: dict[str, tuple[_Handler, _Handler]] = {}

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        """Run before the handler; raise to refuse the call."""

    async def respond(self, context: Context) -> None:
        """Run right before the first response message leaves."""

    async def exit(self, context: Context, error: BaseException | None) -> None:
        """Run when the call ends; ``error`` is what ended it, None on success."""

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self._selector(method):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = wrap_handler(handler, self, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def wrap_handler(handler: _Handler, link: Link, full_method: str) -> _Handler:
    """Return ``handler`` with ``link``'s hooks around its behaviour."""
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _around_unary(handler.unary_unary, link, full_method, streaming_request=False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _around_stream(handler.unary_stream, link, full_method, streaming_request=False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _around_unary(handler.stream_unary, link, full_method, streaming_request=True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    behavior = cast(Callable[..., Any], handler.stream_stream)
    return grpc.stream_stream_rpc_method_handler(
        _around_stream(behavior, link, full_method, streaming_request=True),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _around_unary(
    behavior: Callable[..., Any], link: Link, full_method: str, *, streaming_request: bool
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def unary(request: Any, context: Context) -> Any:
        try:
            await link.enter(None if streaming_request else request, context, full_method)
            response = await behavior(request, context)
            await link.respond(context)
        except BaseException as error:
            await link.exit(context, error)
            raise
        await link.exit(context, None)
        return response

    return unary


def _around_stream(
    behavior: Callable[..., Any], link: Link, full_method: str, *, streaming_request: bool
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            await link.enter(None if streaming_request else request, context, full_method)
            responded = False
            async for item in _as_async_iterator(behavior(request, context)):
                if not responded:
                    await link.respond(context)
                    responded = True
                yield item
            if not responded:
                await link.respond(context)
        except BaseException as error:
            await link.exit(context, error)
            raise
        await link.exit(context, None)

    return stream


async def _as_async_iterator(result: Any) -> AsyncIterator[Any]:
    # A streaming behaviour is an async generator, or (for handlers that write
    # with context.write) a coroutine that returns None.
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    elif result is not None:
        await result
