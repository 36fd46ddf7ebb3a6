"""One HTTP request → one upstream RPC → one HTTP response (or stream).

:class:`RpcEndpoint` is the ASGI app behind every contract route: it binds
the request message, forwards the allowed headers as metadata, calls the
RPC with a deadline, and turns the reply, or the status, into HTTP through
the one table of :mod:`.status`.

Security: the body was already bounded by the body-limit middleware; the
request is bound strictly (:mod:`.decode`); only allow-listed headers cross
in either direction (:mod:`.metadata`); upstream errors reach the client only
as the server's public message and allow-listed details (:mod:`.status`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from graphgate.clients.gateway.bindings import HttpBinding
from graphgate.clients.gateway.decode import BindingError, build_request
from graphgate.clients.gateway.encode import choose_encoder, dumps, message_json, response_json
from graphgate.clients.gateway.metadata import (
    AmbiguousCredentials,
    inbound_metadata,
    outbound_headers,
    request_id,
)
from graphgate.clients.gateway.options import GatewayOptions
from graphgate.clients.gateway.status import (
    STATUS_DETAILS_KEY,
    decode_details,
    edge_error,
    error_body,
    http_status,
    public_message,
)
from graphgate.clients.gateway.upstream import BadTimeout, Upstream, call_timeout

_log = logging.getLogger("graphgate.gateway")
JSON = "application/json"


def _details_blob(trailing: Any) -> bytes | None:
    for key, value in trailing or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return value
    return None


def rpc_error_parts(
    error: aio.AioRpcError,
) -> tuple[grpc.StatusCode, dict[str, Any], dict[str, str]]:
    """The status, the JSON error body and the headers of a failed call."""
    code = error.code()
    trailing = error.trailing_metadata()
    message, details = decode_details(_details_blob(trailing), code)
    body = error_body(code, public_message(code, message), details)
    headers = outbound_headers(error.initial_metadata(), trailing)
    return code, body, headers


def rpc_error_response(error: aio.AioRpcError, rid: str) -> Response:
    """The HTTP error response for a failed upstream call."""
    code, body, headers = rpc_error_parts(error)
    headers.setdefault("X-Request-Id", rid)
    return Response(dumps(body), status_code=http_status(code), headers=headers, media_type=JSON)


class RpcEndpoint:
    """The ASGI app behind every contract route; the route puts the matched
    :class:`HttpBinding` in the scope (``graphgate.binding``)."""

    def __init__(self, upstream: Upstream, options: GatewayOptions) -> None:
        self._upstream = upstream
        self._options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        binding: HttpBinding = scope["graphgate.binding"]
        request = Request(scope, receive)
        response = await self._respond(binding, request)
        await response(scope, receive, send)

    async def _respond(self, binding: HttpBinding, request: Request) -> Response:
        headers = request.headers
        rid = request_id(headers)
        try:
            message = build_request(
                binding,
                request.path_params,
                request.query_params.multi_items(),
                await request.body(),
                headers.get("content-type"),
            )
            timeout = call_timeout(
                headers.get("grpc-timeout"), self._options, streaming=binding.streaming
            )
        except BindingError as exc:
            return self._bad_request(exc.status, exc.message, exc.field, rid)
        except BadTimeout as exc:
            return self._bad_request(400, str(exc), "Grpc-Timeout", rid)
        peer = request.client.host if request.client else None
        try:
            metadata = inbound_metadata(headers.items(), peer, rid)
        except AmbiguousCredentials as exc:
            return self._bad_request(400, str(exc), exc.header, rid)
        call = self._upstream.callable_for(binding)(message, metadata=metadata, timeout=timeout)
        if binding.streaming:
            return await self._stream(call, headers, rid)
        try:
            reply = await call
            initial = await call.initial_metadata()
        except aio.AioRpcError as exc:
            return rpc_error_response(exc, rid)
        out = outbound_headers(initial, await call.trailing_metadata())
        out.setdefault("X-Request-Id", rid)
        return Response(dumps(response_json(binding, reply)), headers=out, media_type=JSON)

    @staticmethod
    def _bad_request(status: int, message: str, field: str, rid: str) -> Response:
        reason = "UNSUPPORTED_MEDIA_TYPE" if status == 415 else "INVALID_REQUEST"
        return edge_error(
            status,
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
            message,
            field=field,
            headers={"X-Request-Id": rid},
        )

    async def _stream(self, call: Any, headers: Headers, rid: str) -> Response:
        # Wait for the first message (or the failure) before answering: an
        # error before any data still gets its real HTTP status.
        try:
            first = await call.read()
            initial = await call.initial_metadata()
        except aio.AioRpcError as exc:
            return rpc_error_response(exc, rid)
        encoder = choose_encoder(headers.get("accept"))
        out = outbound_headers(initial)
        out.setdefault("X-Request-Id", rid)
        out["X-Accel-Buffering"] = "no"  # tell buffering proxies to pass frames on

        async def frames() -> AsyncIterator[bytes]:
            try:
                item = first
                while item is not aio.EOF:
                    yield encoder.result(message_json(item))
                    item = await call.read()
            except aio.AioRpcError as exc:
                _, body, _ = rpc_error_parts(exc)
                yield encoder.error(body)
            finally:
                call.cancel()  # no-op when done; frees the upstream call on disconnect

        return StreamingResponse(frames(), headers=out, media_type=encoder.media_type)
