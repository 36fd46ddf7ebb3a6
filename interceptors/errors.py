"""The one place where exceptions become gRPC status codes (C16).

A :class:`~graphgate.server.errors.GraphgateError` becomes its status code,
its public message, and ``google.rpc`` details (``ErrorInfo`` always;
``BadRequest``, ``RetryInfo``, ``QuotaFailure`` where they apply) in
``grpc-status-details-bin``. Anything else is a bug: it is logged in full
with the request id and reaches the client as INTERNAL with a generic
message and that request id, nothing more.

Security: the only text that leaves the process is ``public_message``, which
domain code writes for clients; ``detail`` and tracebacks stay in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from graphgate.interceptors.chain import Context, Link
from graphgate.server.context import current_call_or_none
from graphgate.server.errors import (
    Code,
    GraphgateError,
    InvalidArgument,
    Overloaded,
    RateLimited,
    Unavailable,
)

DOMAIN = "graphgate"
_log = logging.getLogger("graphgate.errors")


def to_status(error: GraphgateError) -> status_pb2.Status:
    """The ``google.rpc.Status`` (code, message, details) for ``error``."""
    status = status_pb2.Status(
        code=code_pb2.Code.Value(error.code.value), message=error.public_message
    )
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)
    info.metadata.update(error.metadata)
    status.details.add().Pack(info)
    if isinstance(error, InvalidArgument) and error.violations:
        bad = error_details_pb2.BadRequest()
        for v in error.violations:
            bad.field_violations.add(field=v.field, description=v.description)
        status.details.add().Pack(bad)
    retry_after = retry_after_seconds(error)
    if retry_after is not None:
        status.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after))
        )
    if isinstance(error, RateLimited) and error.quota_violations:
        quota = error_details_pb2.QuotaFailure()
        for q in error.quota_violations:
            quota.violations.add(subject=q.subject, description=q.description)
        status.details.add().Pack(quota)
    return status


def retry_after_seconds(error: GraphgateError) -> int | None:
    """Whole seconds the client should wait before retrying, if retrying helps."""
    if isinstance(error, RateLimited) and error.figures is not None:
        return error.figures.retry_after_seconds
    if isinstance(error, Overloaded | Unavailable):
        return max(1, math.ceil(error.retry_after_seconds))
    return None


def _internal(request_id: str) -> GraphgateError:
    return GraphgateError(
        public_message=f"internal error (request id {request_id})",
        reason="INTERNAL",
        code=Code.INTERNAL,
    )


class ErrorsInterceptor(Link):
    """Turns every exception of the calls below it into a status (C16)."""

    async def exit(self, context: Context, error: BaseException | None) -> None:
        if error is None or isinstance(error, aio.AbortError | asyncio.CancelledError):
            return
        if isinstance(error, GeneratorExit | KeyboardInterrupt | SystemExit):
            return
        call = current_call_or_none()
        request_id = call.request_id if call else "-"
        if isinstance(error, GraphgateError):
            known = error
            if error.detail:
                _log.info("%s %s: %s", request_id, error.reason, error.detail)
        else:
            _log.error("unexpected error, request id %s", request_id, exc_info=error)
            known = _internal(request_id)
        if call is not None:
            call.error = known
        trailing = list(call.response_metadata) if call else []
        retry_after = retry_after_seconds(known)
        if retry_after is not None and not any(k == "retry-after" for k, _ in trailing):
            trailing.append(("retry-after", str(retry_after)))
        status = rpc_status.to_status(to_status(known))
        await context.abort(
            status.code, status.details, trailing_metadata=(*trailing, *status.trailing_metadata)
        )


def grpc_code(code: Code) -> grpc.StatusCode:
    """The gRPC status code of a :class:`Code`."""
    return grpc.StatusCode[code.value]
