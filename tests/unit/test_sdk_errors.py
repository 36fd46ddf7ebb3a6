"""The SDK's error mapping, code by code, and its retry budget (no sockets)."""

from __future__ import annotations

import random

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from graphgate.clients import (
    AlreadyExists,
    AuthenticationError,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    GraphgateError,
    InvalidArgument,
    NotFound,
    NotImplementedByServer,
    PermissionDenied,
    QueryRefused,
    RateLimited,
    RetryPolicy,
    ServerError,
    Unavailable,
)
from graphgate.clients.contract import all_rpcs, rpc
from graphgate.clients.errors import from_rpc_error, from_status

CODES = [
    (grpc.StatusCode.UNAUTHENTICATED, AuthenticationError),
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
    (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
    (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, RateLimited),
    (grpc.StatusCode.UNAVAILABLE, Unavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
    (grpc.StatusCode.CANCELLED, Cancelled),
    (grpc.StatusCode.UNIMPLEMENTED, NotImplementedByServer),
    (grpc.StatusCode.INTERNAL, ServerError),
    (grpc.StatusCode.UNKNOWN, ServerError),
    (grpc.StatusCode.ABORTED, GraphgateError),
]


def _details(code: int, message: str, *messages: object) -> bytes:
    status = status_pb2.Status(code=code, message=message)
    for message_ in messages:
        status.details.add().Pack(message_)  # type: ignore[arg-type]
    return status.SerializeToString()


class FakeError(grpc.RpcError):
    """What grpcio raises: an RpcError that is also a Call."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: list[tuple[str, object]]):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> list[tuple[str, object]]:
        return []

    def trailing_metadata(self) -> list[tuple[str, object]]:
        return self._trailers


@pytest.mark.parametrize(("code", "cls"), CODES, ids=lambda c: getattr(c, "name", str(c)))
def test_each_code_has_its_class(code: grpc.StatusCode, cls: type[GraphgateError]) -> None:
    error = from_status(code, "it failed")
    assert type(error) is cls
    assert error.code is code
    assert error.reason == code.name
    assert error.message == "it failed"


def test_reason_metadata_and_request_id_come_from_the_details() -> None:
    info = error_details_pb2.ErrorInfo(reason="EMAIL_TAKEN", domain="graphgate")
    info.metadata["field"] = "email"
    raised = FakeError(
        grpc.StatusCode.ALREADY_EXISTS,
        "ignored: the status message wins",
        [
            ("x-request-id", "req-12345678"),
            ("grpc-status-details-bin", _details(code_pb2.ALREADY_EXISTS, "already exists", info)),
        ],
    )
    error = from_rpc_error(raised, request_id="sent-by-client")
    assert isinstance(error, AlreadyExists)
    assert (error.reason, error.message) == ("EMAIL_TAKEN", "already exists")
    assert error.metadata == {"field": "email"}
    assert error.request_id == "req-12345678"
    assert str(error) == "already exists (EMAIL_TAKEN, request id req-12345678)"


def test_the_clients_request_id_is_kept_when_the_server_sent_none() -> None:
    error = from_rpc_error(
        FakeError(grpc.StatusCode.UNAVAILABLE, "connect failed", []), request_id="sent-by-client"
    )
    assert error.request_id == "sent-by-client"


def test_field_violations() -> None:
    bad = error_details_pb2.BadRequest()
    bad.field_violations.add(field="email", description="must be an email")
    error = from_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "x",
        status_details=_details(code_pb2.INVALID_ARGUMENT, "invalid request", bad),
    )
    assert isinstance(error, InvalidArgument)
    assert [(v.field, v.description) for v in error.field_violations] == [
        ("email", "must be an email")
    ]


def test_rate_limits_carry_retry_after_and_quotas() -> None:
    quota = error_details_pb2.QuotaFailure()
    quota.violations.add(subject="keys", description="3 calls per window")
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=5))
    error = from_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "x",
        trailers={"retry-after": "9", "x-ratelimit-limit": "3"},
        status_details=_details(code_pb2.RESOURCE_EXHAUSTED, "rate limit exceeded", retry, quota),
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after == pytest.approx(2.000000005)
    assert error.limit == 3
    assert [q.subject for q in error.quota_violations] == ["keys"]
    only_header = from_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "x", trailers={"retry-after": "4"}
    )
    assert only_header.retry_after == 4
    only_reset = from_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "x", trailers={"x-ratelimit-reset": "7"}
    )
    assert only_reset.retry_after == 7


@pytest.mark.parametrize(
    "reason",
    [
        "QUERY_CLASS_NOT_PERMITTED",
        "QUERY_CLASS_FORBIDDEN",
        "MISSING_PARAMETER",
        "QUERY_ANALYSIS_FAILED",
        "MULTIPLE_STATEMENTS",
        "QUERY_REFUSED",
    ],
)
def test_firewall_refusals_are_query_refused(reason: str) -> None:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="graphgate")
    error = from_status(
        grpc.StatusCode.PERMISSION_DENIED,
        "x",
        status_details=_details(code_pb2.PERMISSION_DENIED, "query refused", info),
    )
    assert isinstance(error, QueryRefused)
    assert isinstance(error, PermissionDenied)


def test_policies_come_from_the_contract() -> None:
    assert rpc("ApiKeyService", "CreateApiKey").writes
    assert not rpc("ApiKeyService", "ListApiKeys").writes
    assert rpc("GraphService", "ExecuteQuery").writes
    assert rpc("graphgate.v1.GraphService", "StreamQuery").server_streaming
    assert not rpc("AuthService", "GetCurrentUser").writes
    assert len(all_rpcs()) >= 35


def _unavailable(retry_after: float | None = None) -> GraphgateError:
    return from_status(
        grpc.StatusCode.UNAVAILABLE,
        "x",
        trailers=({"retry-after": str(retry_after)} if retry_after is not None else {}),
    )


def test_writes_and_other_codes_are_never_retried() -> None:
    budget = RetryPolicy().budget(random.Random(1))
    assert budget.next_delay(_unavailable(), writes=True) is None
    assert budget.next_delay(from_status(grpc.StatusCode.INTERNAL, "x"), writes=False) is None
    assert (
        budget.next_delay(from_status(grpc.StatusCode.DEADLINE_EXCEEDED, "x"), writes=False) is None
    )


def test_full_jitter_grows_and_stops_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=4, initial_backoff=1.0, max_backoff=3.0, max_total_wait=100)
    budget = policy.budget(random.Random(7))
    delays = [budget.next_delay(_unavailable(), writes=False) for _ in range(4)]
    assert delays[3] is None
    assert all(d is not None for d in delays[:3])
    assert 0 <= delays[0] <= 1.0  # type: ignore[operator]
    assert 0 <= delays[1] <= 2.0  # type: ignore[operator]
    assert 0 <= delays[2] <= 3.0  # type: ignore[operator]


def test_server_delay_is_honoured_within_the_total_budget() -> None:
    budget = RetryPolicy(initial_backoff=0.0, max_total_wait=5).budget(random.Random(0))
    assert budget.next_delay(_unavailable(2), writes=False) == 2
    assert budget.next_delay(_unavailable(2), writes=False) == 2
    assert budget.next_delay(_unavailable(2), writes=False) is None  # 6 s > 5 s budget
    assert budget.waited == 4


def test_disabled_policy_and_validation() -> None:
    assert RetryPolicy.disabled().budget().next_delay(_unavailable(), writes=False) is None
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
