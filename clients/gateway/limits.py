"""Request size limits (C22): the head at 8 KB (431), the body at 8 MB (413).

The head limit counts the request target and every header name and value;
past it this middleware answers 431 with the JSON error shape. uvicorn's
parser ceiling (``h11_max_incomplete_event_size``, set by
:func:`~graphgate.clients.gateway.run_gateway` to twice this limit) bounds
what the server buffers while a head is still arriving: a slow or endless
head is cut off there (400, connection closed) before it is even parsed.

The body limit refuses a declared ``Content-Length`` above the limit before
reading a byte, and counts a body sent without one (chunked) as it arrives,
refusing it the moment it passes the limit.

Security: both checks run before routing and before any upstream call; an
oversized request costs a comparison, not a buffer.
"""

from __future__ import annotations

import grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphgate.clients.gateway.status import edge_error


class HeaderLimitMiddleware:
    """Refuses requests whose head (target plus headers) exceeds ``limit`` bytes."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self._limit:
                response = edge_error(
                    431,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "HEADERS_TOO_LARGE",
                    f"request headers exceed {self._limit} bytes",
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self._limit = limit

    def _refusal(self) -> ASGIApp:
        return edge_error(
            413,
            grpc.StatusCode.INVALID_ARGUMENT,
            "BODY_TOO_LARGE",
            f"request body exceeds {self._limit} bytes",
            headers={"Connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            # uvicorn's parser already refused a malformed Content-Length.
            if name == b"content-length" and value.isdigit() and int(value) > self._limit:
                await self._refusal()(scope, receive, send)
                return
            chunked = chunked or name == b"transfer-encoding"
        if not chunked:
            # No body, or a Content-Length within the limit that the HTTP
            # parser holds the client to: nothing left to count.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise  # too late for a clean 413; the server drops the connection
            await self._refusal()(scope, receive, send)
