"""The one gRPC status → HTTP status table, and the JSON error body.

Every error the sidecar returns, whether the gRPC server produced it or the
sidecar's own edge (size limits, admission, routing), has the same body::

    {"code": "NOT_FOUND", "message": "...", "details": [{"@type": ..., ...}]}

``code`` is the gRPC status name, ``message`` the server's public message,
and ``details`` the ``google.rpc`` details of ``grpc-status-details-bin`` in
proto3 JSON (``ErrorInfo``, ``BadRequest``, ``RetryInfo``, ``QuotaFailure``...).

Security: only statuses that carry graphgate's details blob were written by
the server's errors layer for clients; anything else (a transport failure,
say: "failed to connect to 10.0.3.7:50051") gets a generic message, so no
upstream address or library text leaks. Detail types outside an allow-list
(``DebugInfo`` with stack traces, unknown types) are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from starlette.responses import JSONResponse

DOMAIN = "graphgate"
_TYPE_PREFIX = "type.googleapis.com/"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

#: gRPC status → HTTP status: the only place this mapping is written.
HTTP_STATUS: Mapping[grpc.StatusCode, int] = MappingProxyType(
    {
        grpc.StatusCode.OK: 200,
        grpc.StatusCode.CANCELLED: 499,
        grpc.StatusCode.UNKNOWN: 500,
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.FAILED_PRECONDITION: 412,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.INTERNAL: 500,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DATA_LOSS: 500,
        grpc.StatusCode.UNAUTHENTICATED: 401,
    }
)

#: What a client reads when the server did not write the message itself.
_GENERIC_MESSAGE: Mapping[grpc.StatusCode, str] = MappingProxyType(
    {
        grpc.StatusCode.CANCELLED: "request cancelled",
        grpc.StatusCode.DEADLINE_EXCEEDED: "deadline exceeded",
        grpc.StatusCode.UNAVAILABLE: "service temporarily unavailable",
        grpc.StatusCode.RESOURCE_EXHAUSTED: "resource exhausted",
        grpc.StatusCode.UNIMPLEMENTED: "not implemented",
    }
)

#: google.rpc detail types a client may see; everything else is dropped.
_PUBLIC_DETAILS = frozenset(
    d.DESCRIPTOR.full_name
    for d in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.ResourceInfo,
        error_details_pb2.Help,
        error_details_pb2.LocalizedMessage,
    )
)


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC status (500 for anything unexpected)."""
    return HTTP_STATUS.get(code, 500)


def error_body(code: grpc.StatusCode, message: str, details: Sequence[Any] = ()) -> dict[str, Any]:
    """The JSON error body: ``{"code", "message", "details"}``."""
    return {"code": code.name, "message": message, "details": list(details)}


def error_response(
    code: grpc.StatusCode,
    message: str,
    details: Sequence[Any] = (),
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An HTTP error response; ``status`` defaults to the table's for ``code``."""
    return JSONResponse(
        error_body(code, message, details),
        status_code=status if status is not None else http_status(code),
        headers=dict(headers or {}),
    )


def edge_error(
    status: int,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    *,
    retry_after: int | None = None,
    headers: Mapping[str, str] | None = None,
    field: str = "",
) -> JSONResponse:
    """An error the sidecar itself decides (binding, limits, admission, routing),
    shaped like the server's: an ``ErrorInfo`` with ``reason``, a ``BadRequest``
    naming ``field`` when given, a ``RetryInfo`` when ``retry_after`` is."""
    details: list[dict[str, Any]] = [
        {"@type": _TYPE_PREFIX + "google.rpc.ErrorInfo", "reason": reason, "domain": DOMAIN}
    ]
    extra = dict(headers or {})
    if field:
        violation = {"field": field, "description": message}
        details.append(
            {"@type": _TYPE_PREFIX + "google.rpc.BadRequest", "fieldViolations": [violation]}
        )
    if retry_after is not None:
        delay = f"{retry_after}s"
        details.append({"@type": _TYPE_PREFIX + "google.rpc.RetryInfo", "retryDelay": delay})
        extra["Retry-After"] = str(retry_after)
    return error_response(code, message, details, status=status, headers=extra)


def decode_details(blob: bytes | None, code: grpc.StatusCode) -> tuple[str | None, list[Any]]:
    """The server's public message and JSON details from ``grpc-status-details-bin``.

    Returns ``(None, [])`` when the blob is absent, unreadable or for another
    status: the caller must then use :func:`public_message`'s generic text.
    """
    if not blob:
        return None, []
    try:
        status = status_pb2.Status.FromString(blob)
    except DecodeError:
        return None, []
    if status.code != code.value[0]:
        return None, []
    details: list[Any] = []
    for packed in status.details:
        if packed.TypeName() not in _PUBLIC_DETAILS:
            continue
        try:
            details.append(json_format.MessageToDict(packed))
        except (json_format.Error, TypeError, KeyError):
            continue  # an unreadable detail is dropped, the error still reported
    return status.message, details


def public_message(code: grpc.StatusCode, from_server: str | None) -> str:
    """``from_server`` when the server's errors layer wrote it, else a generic text."""
    if from_server:
        return from_server
    return _GENERIC_MESSAGE.get(code, "request failed")
