"""Errors across the worker socket: the hierarchy out of the worker, and back in.

A worker ends a failed call with the gRPC status of its
:class:`GraphgateError`, the already-safe ``public_message`` as details, and
the machine-readable parts (reason, retry hint, field violations, audit
event) as trailing metadata. The pool turns that back into the same class, so
the API server's errors layer sees exactly what the worker raised.

Security: only ``public_message`` crosses the socket, never ``detail``. A
status the worker did not set on purpose (a crash, a bug) becomes a generic
error here, its text kept for the log.
"""

from __future__ import annotations

import contextlib
import json
import logging

import grpc

from graphgate.server.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    GraphgateError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QueryRefused,
    Unavailable,
)

_log = logging.getLogger(__name__)

REASON = "graphgate-reason"
RETRY_AFTER = "graphgate-retry-after"
# Binary ("-bin") because descriptions may hold any text; metadata text must be printable ASCII.
VIOLATIONS = "graphgate-violations-bin"
AUDIT_EVENT = "graphgate-audit-event"

Metadata = tuple[tuple[str, str | bytes], ...]


def to_status(error: GraphgateError) -> tuple[grpc.StatusCode, str, Metadata]:
    """The status, details and trailing metadata a worker sends for ``error``."""
    metadata: list[tuple[str, str | bytes]] = [(REASON, error.reason)]
    if isinstance(error, Unavailable):
        metadata.append((RETRY_AFTER, f"{error.retry_after_seconds:g}"))
    if isinstance(error, InvalidArgument) and error.violations:
        pairs = [[v.field, v.description] for v in error.violations]
        metadata.append((VIOLATIONS, json.dumps(pairs).encode()))
    if isinstance(error, QueryRefused):
        metadata.append((AUDIT_EVENT, error.audit_event))
    return grpc.StatusCode[error.code.value], error.public_message, tuple(metadata)


def _values(error: grpc.aio.AioRpcError, key: str) -> list[str]:
    found: list[str] = []
    for pair in tuple(error.trailing_metadata() or ()):
        name, value = pair[0], pair[1]
        if name == key:
            found.append(value.decode() if isinstance(value, bytes) else str(value))
    return found


def _violations(error: grpc.aio.AioRpcError) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    for raw in _values(error, VIOLATIONS):
        with contextlib.suppress(ValueError, TypeError):
            found.extend(FieldViolation(str(f), str(d)) for f, d in json.loads(raw))
    return found


def from_status(error: grpc.aio.AioRpcError, *, worker: int) -> GraphgateError:
    """The hierarchy's error for a failed worker call. Never raises."""
    code = error.code()
    details = error.details() or ""
    reasons = _values(error, REASON)
    reason = reasons[0] if reasons else ""
    if code == grpc.StatusCode.INVALID_ARGUMENT and reason:
        return InvalidArgument(public_message=details, reason=reason, violations=_violations(error))
    if code == grpc.StatusCode.PERMISSION_DENIED and reason == "QUERY_REFUSED":
        events = _values(error, AUDIT_EVENT)
        return QueryRefused(
            public_message=details, audit_event=events[0] if events else "injection_attempt"
        )
    known: dict[grpc.StatusCode, type[GraphgateError]] = {
        grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
        grpc.StatusCode.NOT_FOUND: NotFound,
        grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
        grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    }
    if reason and code in known:
        return known[code](public_message=details, reason=reason)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(
            public_message=details if reason else "query exceeded its time limit",
            reason=reason or "QUERY_TIMEOUT",
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        # CANCELLED too: a restarting worker's old channel is closed under late calls.
        retry = [float(v) for v in _values(error, RETRY_AFTER) if v.replace(".", "", 1).isdigit()]
        return Unavailable(
            public_message=details if reason else "graph engine temporarily unavailable",
            reason=reason or "WORKER_UNAVAILABLE",
            retry_after_seconds=float(retry[0]) if retry else 0.5,
            detail=f"worker {worker}: {details}",
        )
    _log.error("graph worker %d failed a call: %s %s", worker, code.name, details)
    return GraphgateError(detail=f"worker {worker}: {code.name} {details}")
