"""Starlette routes built from the contract's HTTP rules.

One :class:`RpcRoute` per path template. It matches the *raw* request path
(percent-encoding intact) against the compiled template, so custom verbs
(``/v1/api-keys/{api_key_id}:rotate``) and encoded slashes behave as
``google.api.http`` specifies; a known path with another method answers 405
with ``Allow`` and the JSON error shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

import grpc
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound
from starlette.types import Receive, Scope, Send

from graphgate.clients.gateway.bindings import HttpBinding, by_template, contract_bindings
from graphgate.clients.gateway.endpoint import RpcEndpoint
from graphgate.clients.gateway.options import GatewayOptions
from graphgate.clients.gateway.status import edge_error
from graphgate.clients.gateway.templates import PathTemplate
from graphgate.clients.gateway.upstream import Upstream

_RAW_PATH = "graphgate.raw_path"


def raw_path(scope: Scope) -> str:
    """The request path as sent (still percent-encoded), without the query.

    Computed once per request and kept in the scope: every route asks.
    """
    cached = scope.get(_RAW_PATH)
    if cached is not None:
        return str(cached)
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        path = bytes(raw).decode("latin-1").split("?", 1)[0]
    else:
        path = quote(str(scope["path"]), safe="/:@!$&'()*+,;=-._~")
    scope[_RAW_PATH] = path
    return path


class RpcRoute(BaseRoute):
    """Every HTTP method bound to one path template."""

    def __init__(
        self, template: PathTemplate, bindings: Mapping[str, HttpBinding], endpoint: RpcEndpoint
    ) -> None:
        self.template = template
        self.bindings = dict(bindings)
        self.endpoint = endpoint
        self.allow = ", ".join(sorted(self.bindings))
        # The literal start of the template: a cheap test before the regex.
        self._prefix = template.source.split("{", 1)[0].split(":", 1)[0]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path = raw_path(scope)
        if not path.startswith(self._prefix):
            return Match.NONE, {}
        values = self.template.match(path)
        if values is None:
            return Match.NONE, {}
        binding = self.bindings.get(scope["method"])
        child: Scope = {"path_params": values, "graphgate.binding": binding}
        return (Match.FULL if binding is not None else Match.PARTIAL), child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("graphgate.binding") is None:
            response = edge_error(
                405,
                grpc.StatusCode.UNIMPLEMENTED,
                "METHOD_NOT_ALLOWED",
                f"{scope['method']} is not allowed here",
                headers={"Allow": self.allow},
            )
            await response(scope, receive, send)
            return
        await self.endpoint(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)

    def __repr__(self) -> str:
        return f"RpcRoute({self.template.source!r}, {self.allow})"


class ApiNotFound(BaseRoute):
    """A JSON 404 for ``/v1/...`` paths no template matches, whatever the method.

    A path some template matches is left to that route (405 with ``Allow``).
    """

    def __init__(self, routes: Sequence[RpcRoute], prefix: str = "/v1/") -> None:
        self._routes = tuple(routes)
        self._prefix = prefix

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self._prefix):
            return Match.NONE, {}
        path = raw_path(scope)
        if any(route.template.match(path) is not None for route in self._routes):
            return Match.NONE, {}
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = edge_error(404, grpc.StatusCode.NOT_FOUND, "ROUTE_NOT_FOUND", "not found")
        await response(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)


class ConsoleMount(Mount):
    """The console's static files at ``/``; never answers for API paths."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if str(scope.get("path", "")).startswith("/v1/"):
            return Match.NONE, {}
        return super().matches(scope)


def rpc_routes(upstream: Upstream, options: GatewayOptions) -> list[RpcRoute]:
    """One route per path template of the contract; custom verbs first so
    ``/x/{id}:verb`` is tried before ``/x/{id}`` (which would also match)."""
    endpoint = RpcEndpoint(upstream, options)
    routes = []
    for bindings in by_template(contract_bindings()).values():
        template = next(iter(bindings.values())).template
        routes.append(RpcRoute(template, bindings, endpoint))
    routes.sort(key=lambda r: ":" not in r.template.source.rsplit("/", 1)[-1])
    return routes
