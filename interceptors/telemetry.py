"""Request ids and tracing: the outermost link of the chain.

Every call gets a :class:`~graphgate.server.context.CallState` with a request
id (the caller's ``x-request-id`` when well formed, else a new one), the
client IP (the peer, or ``X-Forwarded-For`` from trusted proxies only) and an
OpenTelemetry span. The request id and any figures later links queue in
``response_metadata`` go back as initial metadata on success.

Security: a caller-supplied request id is accepted only if it matches a
short, log-safe pattern, so it cannot inject text into logs or headers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from contextvars import ContextVar, Token
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, every_method
from graphgate.server.context import CallState, begin_call, current_call_or_none
from graphgate.server.contract import lookup
from graphgate.server.errors import GraphgateError
from graphgate.server.services.client_ip import IPNetwork, client_ip

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
_tracer = trace.get_tracer("graphgate.server")
_span: ContextVar[Span | None] = ContextVar("graphgate_call_span", default=None)
# The call's span is the *current* span while the call runs, so spans started
# below it (engine calls, store calls) are its children in the same trace.
_attached: ContextVar[Token[otel_context.Context] | None] = ContextVar(
    "graphgate_call_span_token", default=None
)


def _metadata_value(metadata: Any, key: str) -> str | None:
    for name, value in metadata or ():
        if name == key:
            return value if isinstance(value, str) else None
    return None


def _forwarded_for(metadata: Any) -> str | None:
    # Several X-Forwarded-For headers are one list, in order (RFC 7239 style).
    values = [v for k, v in metadata or () if k == "x-forwarded-for" and isinstance(v, str)]
    return ", ".join(values) if values else None


class TelemetryInterceptor(Link):
    """Creates the call state, the request id and the call's span."""

    def __init__(
        self, *, trusted_proxies: Sequence[IPNetwork] = (), selector: Selector = every_method
    ) -> None:
        super().__init__(selector=selector)
        self._trusted_proxies = tuple(trusted_proxies)

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        metadata = context.invocation_metadata()
        supplied = _metadata_value(metadata, "x-request-id")
        request_id = supplied if supplied and _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        peer = context.peer() or ""
        state = CallState(
            request_id=request_id,
            full_method=full_method,
            method=lookup(full_method),
            peer=peer,
            client_ip=client_ip(peer, _forwarded_for(metadata), self._trusted_proxies),
            user_agent=_metadata_value(metadata, "user-agent") or "",
            response_metadata=[("x-request-id", request_id)],
        )
        span = _tracer.start_span(
            full_method.lstrip("/"),
            kind=trace.SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.method": full_method,
                "graphgate.request_id": request_id,
            },
        )
        span_context = span.get_span_context()
        if span_context.is_valid:
            state.trace_id = format(span_context.trace_id, "032x")
        begin_call(state)
        _span.set(span)
        _attached.set(otel_context.attach(trace.set_span_in_context(span)))

    async def respond(self, context: Context) -> None:
        state = current_call_or_none()
        if state is not None:
            await context.send_initial_metadata(tuple(state.response_metadata))

    async def exit(self, context: Context, error: BaseException | None) -> None:
        state = current_call_or_none()
        span = _span.get()
        token = _attached.get()
        if token is not None:
            _attached.set(None)
            otel_context.detach(token)
        if state is None or span is None:
            return
        _span.set(None)
        code = context.code() or grpc.StatusCode.OK
        span.set_attribute("rpc.grpc.status_code", code.name)
        if state.graph_id:
            span.set_attribute("graphgate.graph_id", state.graph_id)
        if state.principal is not None:
            span.set_attribute("graphgate.caller_kind", state.principal.kind.value)
        if isinstance(state.error, GraphgateError):
            span.set_attribute("graphgate.error_reason", state.error.reason)
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
        span.end()
