"""The chain: links with three hooks, run as one gRPC server interceptor.

A link subclasses :class:`Link` and overrides the hooks it needs:

- ``enter(request, context, full_method)`` before the handler runs
  (``request`` is None for client-streaming calls); it may raise to refuse
  the call;
- ``respond(context)`` right before the first response leaves (initial
  metadata can still be sent);
- ``exit(context, error)`` when the call is over, with the exception that
  ended it (None on success); it may raise a replacement exception.

:class:`Chain` runs its links as if each wrapped the next (the first is
outermost): ``enter`` in order; then, innermost first, ``respond`` and
``exit``. A link whose ``enter`` ran (or raised) always gets its ``exit``,
with the exception raised by the handler or by any link inside it. Like
go-grpc-middleware's ``ChainUnaryServer``, the chain is one interceptor, not
one per link: a call costs one method lookup and one wrapper, and hooks a
link does not override are never awaited.

Rejections must happen inside the wrapped handler, never in
``intercept_service`` itself: grpc.aio sends the message of an exception
raised there to the client verbatim.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import grpc
from grpc import aio

from graphgate.interceptors.selector import Selector, every_method

#: The servicer context of any call.
Context: TypeAlias = "aio.ServicerContext[Any, Any]"
# Quoted: grpcio's classes are generic only in their type stubs.
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]]"
_Enter: TypeAlias = Callable[[Any, Context, str], Awaitable[None]]
_Respond: TypeAlias = Callable[[Context], Awaitable[None]]
_Exit: TypeAlias = Callable[[Context, "BaseException | None"], Awaitable[None]]


class Link:
    """One concern of the chain: override the hooks you need."""

    def __init__(self, *, selector: Selector = every_method) -> None:
        self._selector = selector

    def selects(self, full_method: str) -> bool:
        """Whether this link applies to ``full_method``."""
        return self._selector(full_method)

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        """Run before the handler; raise to refuse the call."""

    async def respond(self, context: Context) -> None:
        """Run right before the first response message leaves."""

    async def exit(self, context: Context, error: BaseException | None) -> None:
        """Run when the call ends; ``error`` is what ended it, None on success."""


@dataclass(frozen=True, slots=True)
class _Step:
    """A link's hooks for one method; None where the link keeps the no-op."""

    enter: _Enter | None
    respond: _Respond | None
    exit: _Exit | None

    @classmethod
    def of(cls, link: Link) -> _Step:
        kind = type(link)
        return cls(
            enter=link.enter if kind.enter is not Link.enter else None,
            respond=link.respond if kind.respond is not Link.respond else None,
            exit=link.exit if kind.exit is not Link.exit else None,
        )


class Chain(aio.ServerInterceptor):
    """Runs ``links`` (outermost first) around every handler, as one interceptor."""

    def __init__(self, links: Sequence[Link]) -> None:
        self._links = tuple(links)
        # Method -> (inner handler, wrapped handler). grpc resolves the same
        # registered handler for a method every time, so each wrapper is
        # built once per method instead of once per call.
        self._wrapped: dict[str, tuple[_Handler, _Handler]] = {}

    @property
    def links(self) -> tuple[Link, ...]:
        """The links, outermost first."""
        return self._links

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        steps = tuple(_Step.of(link) for link in self._links if link.selects(method))
        wrapped = _wrap_handler(handler, steps, method) if steps else handler
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap_handler(handler: _Handler, steps: tuple[_Step, ...], full_method: str) -> _Handler:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _around_unary(handler.unary_unary, steps, full_method, streaming_request=False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _around_stream(handler.unary_stream, steps, full_method, streaming_request=False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _around_unary(handler.stream_unary, steps, full_method, streaming_request=True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    behavior = cast(Callable[..., Any], handler.stream_stream)
    return grpc.stream_stream_rpc_method_handler(
        _around_stream(behavior, steps, full_method, streaming_request=True),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


async def _unwind(
    steps: Sequence[_Step], context: Context, error: BaseException | None, *, respond: bool
) -> BaseException | None:
    """Innermost first: respond (on success, if asked) and exit each link.

    Returns what ended the call once every link had its say: ``error``, or
    the exception a hook raised instead.
    """
    for step in reversed(steps):
        if respond and error is None and step.respond is not None:
            try:
                await step.respond(context)
            except BaseException as raised:
                error = raised
        if step.exit is not None:
            try:
                await step.exit(context, error)
            except BaseException as raised:
                error = raised
    return error


def _around_unary(
    behavior: Callable[..., Any],
    steps: tuple[_Step, ...],
    full_method: str,
    *,
    streaming_request: bool,
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def unary(request: Any, context: Context) -> Any:
        message = None if streaming_request else request
        entered = 0  # a link whose enter raised counts: it gets its exit
        error: BaseException | None = None
        response = None
        try:
            for step in steps:
                entered += 1
                if step.enter is not None:
                    await step.enter(message, context, full_method)
            response = await behavior(request, context)
        except BaseException as raised:
            error = raised
        error = await _unwind(steps[:entered], context, error, respond=True)
        if error is not None:
            raise error
        return response

    return unary


def _around_stream(
    behavior: Callable[..., Any],
    steps: tuple[_Step, ...],
    full_method: str,
    *,
    streaming_request: bool,
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        message = None if streaming_request else request
        entered = 0  # a link whose enter raised counts: it gets its exit
        error: BaseException | None = None
        responded = False
        try:
            for step in steps:
                entered += 1
                if step.enter is not None:
                    await step.enter(message, context, full_method)
            async for item in _as_async_iterator(behavior(request, context)):
                if not responded:
                    responded = True
                    await _respond(steps, context)
                yield item
            if not responded:
                await _respond(steps, context)
        except BaseException as raised:  # GeneratorExit too: the client went away
            error = raised
        error = await _unwind(steps[:entered], context, error, respond=False)
        if error is not None:
            raise error

    return stream


async def _respond(steps: tuple[_Step, ...], context: Context) -> None:
    for step in reversed(steps):
        if step.respond is not None:
            await step.respond(context)


async def _as_async_iterator(result: Any) -> AsyncIterator[Any]:
    # A streaming behaviour is an async generator, or (for handlers that write
    # with context.write) a coroutine that returns None.
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    elif result is not None:
        await result
