"""The worker contract: wire-compatible answers and errors that survive the socket (C16)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor

from graphgate.server.engine.calls import WIRE_COMPATIBLE
from graphgate.server.engine.wire import from_status, to_status
from graphgate.server.errors import (
    DeadlineExceeded,
    FieldViolation,
    GraphgateError,
    InvalidArgument,
    NotFound,
    QueryRefused,
    Unavailable,
)


def _fields(descriptor: Descriptor) -> dict[int, tuple[str, int, str]]:
    return {
        f.number: (f.name, f.type, f.message_type.full_name if f.message_type else "")
        for f in descriptor.fields
    }


@pytest.mark.parametrize(("worker", "public"), list(WIRE_COMPATIBLE.items()))
def test_worker_answers_parse_as_public_messages(worker: Any, public: Any) -> None:
    """The pool parses worker bytes straight into public messages: fields must line up."""
    worker_fields = _fields(worker.DESCRIPTOR)
    public_fields = _fields(public.DESCRIPTOR)
    for number, field in worker_fields.items():
        assert public_fields.get(number) == field, (worker.DESCRIPTOR.name, number)


def _through_the_socket(error: GraphgateError) -> GraphgateError:
    code, details, metadata = to_status(error)
    received = grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*metadata), details=details
    )
    return from_status(received, worker=0)


@pytest.mark.parametrize(
    "error",
    [
        InvalidArgument(
            public_message="statement 2: Parser exception: ¿qué?\n\tcolumn 3",
            reason="QUERY_INVALID",
            violations=[FieldViolation("statements[1]", "Parser exception: ¿qué?\n\t")],
        ),
        QueryRefused(
            public_message="this request may not write", audit_event="privilege_escalation_attempt"
        ),
        DeadlineExceeded(public_message="query exceeded its time limit", reason="QUERY_TIMEOUT"),
        NotFound(public_message="graph not found", reason="GRAPH_NOT_FOUND"),
        Unavailable(public_message="engine busy", reason="ENGINE_ERROR", retry_after_seconds=0.25),
    ],
)
def test_errors_keep_their_class_and_public_parts(error: GraphgateError) -> None:
    back = _through_the_socket(error)
    assert type(back) is type(error)
    assert (back.public_message, back.reason) == (error.public_message, error.reason)
    if isinstance(error, InvalidArgument):
        assert isinstance(back, InvalidArgument)
        assert list(back.violations) == list(error.violations)
    if isinstance(error, QueryRefused):
        assert isinstance(back, QueryRefused)
        assert back.audit_event == error.audit_event
    if isinstance(error, Unavailable):
        assert isinstance(back, Unavailable)
        assert back.retry_after_seconds == error.retry_after_seconds


def test_detail_never_crosses_the_socket() -> None:
    _, details, metadata = to_status(InvalidArgument(public_message="bad", detail="/srv/secret"))
    assert "/srv/secret" not in details + repr(metadata)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.UNKNOWN, GraphgateError),
        (grpc.StatusCode.INTERNAL, GraphgateError),
    ],
)
def test_statuses_the_worker_did_not_set_are_generic(
    code: grpc.StatusCode, expected: type[GraphgateError]
) -> None:
    """A crash or a bug: the transport's text is not shown to clients."""
    received = grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="Socket closed /run/x.sock"
    )
    error = from_status(received, worker=1)
    assert type(error) is expected
    assert "/run" not in error.public_message
