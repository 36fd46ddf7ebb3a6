"""The sidecar's two error layers (Starlette style).

Known HTTP errors raised by Starlette itself (an unknown path, a static file
that is not there) become the JSON error shape through
:func:`http_exception_response`. Everything else that escapes is a bug:
:class:`CatchAllMiddleware` logs it in full with a request id and answers
500 with a generic message naming that id, nothing more.

Security: no exception text, path, host or stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
import uuid

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphgate.clients.gateway.status import edge_error

_log = logging.getLogger("graphgate.gateway")

_HTTP_CODES = {
    400: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
    404: (grpc.StatusCode.NOT_FOUND, "ROUTE_NOT_FOUND"),
    405: (grpc.StatusCode.UNIMPLEMENTED, "METHOD_NOT_ALLOWED"),
}


async def http_exception_response(request: Request, exc: Exception) -> Response:
    """The JSON error for a Starlette :class:`HTTPException` (404, 405...)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code, reason = _HTTP_CODES.get(status, (grpc.StatusCode.UNKNOWN, "HTTP_ERROR"))
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    message = "not found" if status == 404 else f"HTTP {status}"
    return edge_error(status, code, reason, message, headers=headers)


class CatchAllMiddleware:
    """Turns any unexpected exception into a generic 500 (never its text)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request_id = uuid.uuid4().hex
            _log.exception("unexpected error, request id %s", request_id)
            if started:
                raise  # headers are out: the server can only drop the connection
            response = edge_error(
                500,
                grpc.StatusCode.INTERNAL,
                "INTERNAL",
                f"internal error (request id {request_id})",
                headers={"X-Request-Id": request_id},
            )
            await response(scope, receive, send)
