"""The parts of the OpenAPI document every operation shares.

The error schema (``{"code", "message", "details"}``), one response per
error status, the response headers (request id, rate-limit figures), the
security schemes, and the sidecar's own ``/healthz`` operation.
"""

from __future__ import annotations

from typing import Any

from graphgate.clients.gateway.metadata import EXPOSED_HEADERS
from graphgate.clients.gateway.schemas import ref
from graphgate.clients.gateway.status import HTTP_STATUS

ERROR_SCHEMA = "graphgate.gateway.Error"
#: Error statuses every operation documents; secured ones add 401 and 403.
ERROR_STATUSES = (400, 404, 409, 412, 429, 500, 501, 503, 504)
SECURED_STATUSES = (401, 403)
BEARER, API_KEY, OPERATOR = "bearerAuth", "apiKeyAuth", "operatorKey"

SECURITY_SCHEMES: dict[str, Any] = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    API_KEY: {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    OPERATOR: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The operator API key (OPERATOR_API_KEY).",
    },
}


def error_schema() -> dict[str, Any]:
    """The schema of every error body (``code`` is a gRPC status name)."""
    codes = sorted({code.name for code in HTTP_STATUS})
    return {
        "type": "object",
        "description": "Every error: the gRPC status name, a public message, google.rpc details.",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "enum": codes},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {"@type": {"type": "string"}},
                },
            },
        },
    }


def header_refs() -> dict[str, Any]:
    """``$ref``s to the response headers, for a response object."""
    return {name: {"$ref": f"#/components/headers/{name}"} for name in EXPOSED_HEADERS}


_HEADER_TEXT = {
    "X-Request-Id": "The call's request id (the client's, when well formed).",
    "X-RateLimit-Limit": "Calls allowed in the current window of this call's category.",
    "X-RateLimit-Remaining": "Calls left in the current window.",
    "X-RateLimit-Reset": "Seconds until the window frees capacity.",
    "Retry-After": "Seconds to wait before retrying (429, 503).",
}


def error_responses() -> dict[str, Any]:
    """``components.responses``: ``E<status>`` for every documented error status."""
    return {
        f"E{status}": {
            "description": f"HTTP {status}: see the error code and details",
            "headers": header_refs(),
            "content": {"application/json": {"schema": ref(ERROR_SCHEMA)}},
        }
        for status in sorted({*ERROR_STATUSES, *SECURED_STATUSES})
    }


def header_components() -> dict[str, Any]:
    """``components.headers``: the exposed response headers."""
    return {
        name: {"schema": {"type": "string"}, "description": _HEADER_TEXT[name]}
        for name in EXPOSED_HEADERS
    }


def healthz_operation() -> dict[str, Any]:
    """The ``GET /healthz`` operation (public, never shed)."""
    ok = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
    return {
        "operationId": "Gateway_Healthz",
        "tags": ["Gateway"],
        "summary": "Liveness of the sidecar (never shed)",
        "security": [],
        "responses": {
            "200": {"description": "alive", "content": {"application/json": {"schema": ok}}}
        },
    }
