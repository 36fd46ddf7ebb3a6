"""CORS from an allow-list only (C22).

A request whose ``Origin`` is listed gets that origin back in
``Access-Control-Allow-Origin`` with ``Access-Control-Allow-Credentials:
true`` and the rate-limit and request-id headers exposed; any other origin
gets no CORS header at all, so the browser keeps the response from the page.
Never ``*``, never an echo of an unlisted origin. Preflights (``OPTIONS``
with ``Access-Control-Request-Method``) are answered here: 204 for a listed
origin asking for allowed methods and headers, 403 otherwise.

Security: credentials travel in headers (``Authorization``, ``X-API-Key``),
not cookies, so a foreign page cannot ride a user's session; the allow-list
decides which pages may *read* responses.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphgate.clients.gateway.metadata import EXPOSED_HEADERS
from graphgate.clients.gateway.status import edge_error

#: Request headers a listed page may send.
ALLOWED_HEADERS = frozenset(
    {"authorization", "content-type", "x-api-key", "x-request-id", "grpc-timeout", "accept"}
)
_MAX_AGE = "600"


class CORSMiddleware:
    """Adds CORS headers for allow-listed origins and answers preflights."""

    def __init__(self, app: ASGIApp, *, origins: Iterable[str], methods: Iterable[str]) -> None:
        self.app = app
        self._origins = frozenset(origins)
        self._methods = frozenset(m.upper() for m in methods)
        self._allow_methods = ", ".join(sorted(self._methods))
        self._allow_headers = ", ".join(sorted(ALLOWED_HEADERS))
        self._expose = ", ".join(EXPOSED_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:  # not a cross-origin browser request: nothing to add
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, headers)(scope, receive, send)
            return
        allowed = origin if origin in self._origins else None

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if allowed is not None:
                    out["access-control-allow-origin"] = allowed
                    out["access-control-allow-credentials"] = "true"
                    out["access-control-expose-headers"] = self._expose
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _preflight(self, origin: str, headers: Headers) -> Response:
        method = headers["access-control-request-method"].upper()
        requested = {
            h.strip().lower()
            for h in headers.get("access-control-request-headers", "").split(",")
            if h.strip()
        }
        if origin not in self._origins or method not in self._methods:
            return self._refuse("origin or method not allowed")
        if not requested <= ALLOWED_HEADERS:
            return self._refuse("request headers not allowed")
        return Response(
            status_code=204,
            headers={
                "access-control-allow-origin": origin,
                "access-control-allow-credentials": "true",
                "access-control-allow-methods": self._allow_methods,
                "access-control-allow-headers": self._allow_headers,
                "access-control-max-age": _MAX_AGE,
                "vary": "Origin",
            },
        )

    @staticmethod
    def _refuse(message: str) -> Response:
        response = edge_error(
            403, grpc.StatusCode.PERMISSION_DENIED, "CORS_REFUSED", f"CORS preflight: {message}"
        )
        response.headers["vary"] = "Origin"
        return response
