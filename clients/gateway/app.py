"""Assembles the sidecar: routes from the contract, the middleware, the console.

The middleware, outermost first (each a small class configured once)::

    SecurityHeadersMiddleware   C22 headers on every response, errors included
    CatchAllMiddleware          anything unexpected → generic 500 + request id
    CORSMiddleware              allow-listed origins only; answers preflights
    HeaderLimitMiddleware       request head > 8 KB → 431
    AdmissionMiddleware         in-flight cap with hysteresis → 503 (C18)
    BodyLimitMiddleware         body > 8 MB → 413
    router                      /healthz, /openapi.json, /v1/... (from the contract), /

Cheap refusals come first: a shed or oversized request never reaches the
router, let alone the upstream channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.staticfiles import StaticFiles

import graphgate.clients.console
from graphgate.clients.gateway.admission import AdmissionController, AdmissionMiddleware
from graphgate.clients.gateway.bindings import contract_bindings
from graphgate.clients.gateway.comments import load_comments
from graphgate.clients.gateway.cors import CORSMiddleware
from graphgate.clients.gateway.errors import CatchAllMiddleware, http_exception_response
from graphgate.clients.gateway.headers import SecurityHeadersMiddleware
from graphgate.clients.gateway.limits import BodyLimitMiddleware, HeaderLimitMiddleware
from graphgate.clients.gateway.openapi import build_document
from graphgate.clients.gateway.options import GatewayOptions
from graphgate.clients.gateway.routes import ApiNotFound, ConsoleMount, rpc_routes
from graphgate.clients.gateway.upstream import Upstream

#: The console's static files (index.html, console.js, console.css).
CONSOLE_DIR = Path(graphgate.clients.console.__file__).parent


async def healthz(request: Request) -> Response:
    """Liveness: the sidecar's event loop answers. Never shed, never upstream."""
    return JSONResponse({"status": "ok"})


class _OpenApiEndpoint:
    """Serves the document, built once when the app is created (a contract the
    document cannot describe fails the start, not the first request)."""

    def __init__(self, options: GatewayOptions) -> None:
        document = build_document(contract_bindings(), load_comments(options.descriptor_set))
        self._document = bytes(JSONResponse(document).body)

    async def serve(self, request: Request) -> Response:
        """The document as JSON."""
        return Response(self._document, media_type="application/json")


def create_app(options: GatewayOptions) -> Starlette:
    """The REST sidecar as an ASGI app; nothing is read from the environment.

    The app opens its one upstream channel on startup (or on first use) and
    closes it at shutdown. ``app.state.admission`` is the
    :class:`AdmissionController`, whose thresholds may be changed while serving.
    Raises :class:`~graphgate.clients.gateway.templates.TemplateError` when an
    HTTP rule of the contract cannot be served.
    """
    upstream = Upstream(options)
    admission = AdmissionController(options.admission)
    api_routes = rpc_routes(upstream, options)
    methods = {m for route in api_routes for m in route.bindings}
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", _OpenApiEndpoint(options).serve, methods=["GET"]),
        *api_routes,
        ApiNotFound(api_routes),
    ]
    if options.console:
        static = StaticFiles(directory=CONSOLE_DIR, html=True)
        routes.append(ConsoleMount("/", static, name="console"))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await upstream.start()
        try:
            yield
        finally:
            await upstream.close(grace=options.shutdown_grace_seconds)

    middleware = [
        Middleware(
            SecurityHeadersMiddleware,
            tls=options.https,
            hsts_max_age=options.hsts_max_age,
            upload_origins=options.upload_origins,
        ),
        Middleware(CatchAllMiddleware),
        Middleware(CORSMiddleware, origins=options.cors_origins, methods=methods),
        Middleware(HeaderLimitMiddleware, limit=options.header_limit),
        Middleware(AdmissionMiddleware, controller=admission),
        Middleware(BodyLimitMiddleware, limit=options.body_limit),
    ]
    handlers: dict[Any, Any] = {HTTPException: http_exception_response}
    app = Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    app.state.admission = admission
    app.state.upstream = upstream
    return app
