"""Typed exceptions, mapped once from a gRPC status and its ``ErrorInfo.reason``.

Every failed call raises a :class:`GraphgateError` subclass chosen by
:func:`from_rpc_error` from the status code (and, for refused queries, the
reason). The server's ``google.rpc.Status`` details travel in the
``grpc-status-details-bin`` trailer: ``ErrorInfo`` gives :attr:`~GraphgateError.reason`
and :attr:`~GraphgateError.metadata`, ``BadRequest`` gives
:attr:`InvalidArgument.field_violations`, ``RetryInfo`` and ``retry-after``
give :attr:`GraphgateError.retry_after`, ``QuotaFailure`` gives
:attr:`RateLimited.quota_violations`.

Catch the base class to handle everything, or a subclass for one case::

    try:
        client.query(graph_id, "MATCH (n) RETURN n")
    except QueryRefused as exc:
        print("the firewall said no:", exc.reason, exc.message)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"

#: ErrorInfo reasons of the query firewall (PERMISSION_DENIED on the wire).
QUERY_REFUSAL_REASONS = frozenset(
    {
        "QUERY_REFUSED",
        "QUERY_ANALYSIS_FAILED",
        "QUERY_TOO_LARGE",
        "MULTIPLE_STATEMENTS",
        "EMPTY_QUERY",
        "QUERY_CLASS_FORBIDDEN",
        "QUERY_CLASS_NOT_PERMITTED",
        "MISSING_PARAMETER",
    }
)


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad request field (from ``google.rpc.BadRequest``)."""

    field: str
    description: str


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One exhausted quota (from ``google.rpc.QuotaFailure``)."""

    subject: str
    description: str


class GraphgateError(Exception):
    """Base of every error the SDK raises.

    Attributes:
        code: the gRPC status code, or None for errors that happened outside a
            call (an upload transfer, a configuration file).
        reason: the machine-readable ``ErrorInfo.reason`` (``UPPER_SNAKE_CASE``),
            or the status code's name when the server sent none.
        message: the server's public message.
        request_id: the ``x-request-id`` of the call, to quote to an operator.
        metadata: ``ErrorInfo.metadata`` (context such as a rate-limit category).
        trailers: the call's trailing metadata (``x-ratelimit-*``, ``retry-after``).
        retry_after: seconds the server asked to wait before retrying, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        request_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        trailers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        details: Iterable[Any] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason or (code.name if code is not None else "")
        self.request_id = request_id
        self.metadata = dict(metadata or {})
        self.trailers = dict(trailers or {})
        self.retry_after = retry_after
        self.details = list(details)

    def __str__(self) -> str:
        where = f", request id {self.request_id}" if self.request_id else ""
        return f"{self.message} ({self.reason}{where})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class AuthenticationError(GraphgateError):
    """UNAUTHENTICATED: credentials missing, wrong, expired or revoked."""


class PermissionDenied(GraphgateError):
    """PERMISSION_DENIED: the caller is known but may not do this."""


class QueryRefused(PermissionDenied):
    """The query firewall refused the statement (see :attr:`reason`).

    Reasons include ``QUERY_CLASS_NOT_PERMITTED`` (beyond the caller's role),
    ``QUERY_CLASS_FORBIDDEN`` (file, extension or admin statements),
    ``MISSING_PARAMETER``, ``MULTIPLE_STATEMENTS`` and ``QUERY_ANALYSIS_FAILED``
    (with ``line`` and ``column`` in :attr:`metadata`).
    """


class NotFound(GraphgateError):
    """NOT_FOUND: it does not exist, or the caller may not know that it does."""


class AlreadyExists(GraphgateError):
    """ALREADY_EXISTS: a unique name or email is taken."""


class InvalidArgument(GraphgateError):
    """INVALID_ARGUMENT: the request is malformed; see :attr:`field_violations`."""

    def __init__(
        self, message: str, *, field_violations: Iterable[FieldViolation] = (), **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.field_violations = list(field_violations)


class FailedPrecondition(GraphgateError):
    """FAILED_PRECONDITION: the system is not in a state that allows this (a CAPTCHA
    is required, the last admin cannot leave, an upload is not validated yet...)."""


class RateLimited(GraphgateError):
    """RESOURCE_EXHAUSTED: a rate limit or a brute-force block; retry after
    :attr:`retry_after` seconds."""

    def __init__(
        self, message: str, *, quota_violations: Iterable[QuotaViolation] = (), **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.quota_violations = list(quota_violations)

    @property
    def limit(self) -> int | None:
        """The limit of the bucket that refused the call (``x-ratelimit-limit``)."""
        return _int(self.trailers.get("x-ratelimit-limit"))


class Unavailable(GraphgateError):
    """UNAVAILABLE: the server or a store cannot answer now, or sheds load
    (reason ``OVERLOADED``). Safe to retry reads; the SDK already did."""


class DeadlineExceeded(GraphgateError):
    """DEADLINE_EXCEEDED: the call ran past its deadline or the server's timeout."""


class Cancelled(GraphgateError):
    """CANCELLED: the call was cancelled (by this client or the server's drain)."""


class NotImplementedByServer(GraphgateError):
    """UNIMPLEMENTED: the server does not offer this RPC (yet)."""


class ServerError(GraphgateError):
    """INTERNAL, UNKNOWN or DATA_LOSS: a server bug; quote :attr:`request_id`."""


class UploadError(GraphgateError):
    """An upload failed outside gRPC: sending the file to its presigned target,
    or validation or ingest reported ``UPLOAD_STATE_FAILED`` (see :attr:`message`)."""


class ConfigError(GraphgateError):
    """Client configuration is missing or unsafe (a config file others can read)."""


_BY_CODE: dict[grpc.StatusCode, type[GraphgateError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: NotImplementedByServer,
    grpc.StatusCode.INTERNAL: ServerError,
    grpc.StatusCode.UNKNOWN: ServerError,
    grpc.StatusCode.DATA_LOSS: ServerError,
}


def error_class(code: grpc.StatusCode, reason: str) -> type[GraphgateError]:
    """The exception class for a status code and ``ErrorInfo.reason``."""
    if reason in QUERY_REFUSAL_REASONS:
        return QueryRefused
    return _BY_CODE.get(code, GraphgateError)


def from_status(
    code: grpc.StatusCode,
    message: str,
    *,
    trailers: Mapping[str, str] | None = None,
    status_details: bytes | None = None,
    request_id: str | None = None,
) -> GraphgateError:
    """Build the typed exception from a status, its trailers and its packed details."""
    trailers = dict(trailers or {})
    reason, metadata = "", {}
    violations: list[FieldViolation] = []
    quotas: list[QuotaViolation] = []
    retry_after: float | None = None
    details: list[Any] = []
    if status_details:
        status = status_pb2.Status.FromString(status_details)
        message = status.message or message
        for packed in status.details:
            if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                packed.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
                details.append(info)
            elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                packed.Unpack(bad)
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
                details.append(bad)
            elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                packed.Unpack(retry)
                delay = retry.retry_delay
                retry_after = delay.seconds + delay.nanos / 1e9
                details.append(retry)
            elif packed.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                quota = error_details_pb2.QuotaFailure()
                packed.Unpack(quota)
                quotas += [QuotaViolation(v.subject, v.description) for v in quota.violations]
                details.append(quota)
    if retry_after is None:
        retry_after = _float(trailers.get("retry-after"))
    if retry_after is None and code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry_after = _float(trailers.get("x-ratelimit-reset"))
    cls = error_class(code, reason)
    kwargs: dict[str, Any] = {
        "code": code,
        "reason": reason,
        "request_id": trailers.get("x-request-id") or request_id,
        "metadata": metadata,
        "trailers": trailers,
        "retry_after": retry_after,
        "details": details,
    }
    if issubclass(cls, InvalidArgument):
        return cls(message, field_violations=violations, **kwargs)
    if issubclass(cls, RateLimited):
        return cls(message, quota_violations=quotas, **kwargs)
    return cls(message, **kwargs)


def from_rpc_error(error: grpc.RpcError, *, request_id: str | None = None) -> GraphgateError:
    """The typed exception for a failed call (sync ``grpc.RpcError`` or
    ``grpc.aio.AioRpcError``). ``request_id`` is the id the client sent, used
    when the server's answer carries none (the call never reached it)."""
    call: Any = error
    code = call.code() if callable(getattr(call, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (call.details() if callable(getattr(call, "details", None)) else None) or ""
    trailers: dict[str, str] = {}
    status_details: bytes | None = None
    for source in ("initial_metadata", "trailing_metadata"):
        getter = getattr(call, source, None)
        for key, value in (getter() if callable(getter) else None) or ():
            if key == _DETAILS_KEY and isinstance(value, bytes):
                status_details = value
            elif isinstance(value, str):
                trailers[key] = value
    return from_status(
        code or grpc.StatusCode.UNKNOWN,
        message or (code.name if code else "call failed"),
        trailers=trailers,
        status_details=status_details,
        request_id=request_id,
    )


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
