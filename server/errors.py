"""The one error hierarchy of graphgate.

Domain code raises these; the errors interceptor maps them to gRPC status codes
(``graphgate.interceptors.errors``) and the REST sidecar maps the status codes
to HTTP once. Anything that is not a :class:`GraphgateError` is a bug and
reaches clients only as INTERNAL with a generic message and the request id.

Security: ``public_message`` is what a client sees and must never contain
internals (SQL, paths, hosts, secrets). ``detail`` is for the server log only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class Code(enum.Enum):
    """The status a :class:`GraphgateError` maps to (gRPC names)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field, for ``google.rpc.BadRequest``."""

    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One exhausted quota, for ``google.rpc.QuotaFailure``."""

    subject: str
    description: str


@dataclass(frozen=True)
class RateFigures:
    """Rate-limit figures that travel as ``x-ratelimit-*`` metadata."""

    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int | None = None


@dataclass
class GraphgateError(Exception):
    """Base of every error graphgate raises on purpose.

    ``reason`` is the machine-readable ``ErrorInfo.reason`` (UPPER_SNAKE_CASE);
    ``metadata`` goes into ``ErrorInfo.metadata`` and must hold nothing secret.
    """

    public_message: str = "request failed"
    reason: str = "INTERNAL"
    detail: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    code: Code = Code.INTERNAL

    def __post_init__(self) -> None:
        super().__init__(self.public_message)

    def __str__(self) -> str:
        return self.public_message


@dataclass
class InvalidArgument(GraphgateError):
    """The request is malformed; ``violations`` name the fields."""

    public_message: str = "invalid request"
    reason: str = "INVALID_ARGUMENT"
    violations: Sequence[FieldViolation] = ()
    code: Code = Code.INVALID_ARGUMENT


@dataclass
class Unauthenticated(GraphgateError):
    """No valid credentials. The message never says which part was wrong."""

    public_message: str = "authentication required"
    reason: str = "UNAUTHENTICATED"
    code: Code = Code.UNAUTHENTICATED


@dataclass
class PermissionDenied(GraphgateError):
    """Credentials are valid but the caller may not do this."""

    public_message: str = "permission denied"
    reason: str = "PERMISSION_DENIED"
    code: Code = Code.PERMISSION_DENIED


@dataclass
class NotFound(GraphgateError):
    """The thing does not exist, or the caller may not know that it does."""

    public_message: str = "not found"
    reason: str = "NOT_FOUND"
    code: Code = Code.NOT_FOUND


@dataclass
class AlreadyExists(GraphgateError):
    """A unique name or key is taken."""

    public_message: str = "already exists"
    reason: str = "ALREADY_EXISTS"
    code: Code = Code.ALREADY_EXISTS


@dataclass
class FailedPrecondition(GraphgateError):
    """The system is not in a state that allows the operation."""

    public_message: str = "operation not allowed in the current state"
    reason: str = "FAILED_PRECONDITION"
    code: Code = Code.FAILED_PRECONDITION


@dataclass
class QueryRefused(PermissionDenied):
    """The query firewall refused a statement (C15). Always audited."""

    public_message: str = "query refused"
    reason: str = "QUERY_REFUSED"
    #: ``injection_attempt`` or ``privilege_escalation_attempt``: the audit event type.
    audit_event: str = "injection_attempt"


@dataclass
class RateLimited(GraphgateError):
    """A rate limit or brute-force block refused the call; safe to retry later."""

    public_message: str = "rate limit exceeded"
    reason: str = "RATE_LIMITED"
    figures: RateFigures | None = None
    quota_violations: Sequence[QuotaViolation] = ()
    code: Code = Code.RESOURCE_EXHAUSTED


@dataclass
class Overloaded(GraphgateError):
    """Admission control shed the call; safe to retry after ``retry_after_seconds``."""

    public_message: str = "server overloaded, retry later"
    reason: str = "OVERLOADED"
    retry_after_seconds: float = 1.0
    code: Code = Code.UNAVAILABLE


@dataclass
class Unavailable(GraphgateError):
    """A dependency (store, graph worker) cannot answer now; safe to retry."""

    public_message: str = "service temporarily unavailable"
    reason: str = "UNAVAILABLE"
    retry_after_seconds: float = 1.0
    code: Code = Code.UNAVAILABLE


@dataclass
class DeadlineExceeded(GraphgateError):
    """The work ran past its deadline or the server-set timeout."""

    public_message: str = "deadline exceeded"
    reason: str = "DEADLINE_EXCEEDED"
    code: Code = Code.DEADLINE_EXCEEDED


@dataclass
class NotImplementedYet(GraphgateError):
    """The RPC is part of the contract but its feature has not landed."""

    public_message: str = "not implemented yet"
    reason: str = "NOT_IMPLEMENTED"
    code: Code = Code.UNIMPLEMENTED


class ConfigurationError(Exception):
    """Settings are invalid; raised at start, never during a request.

    ``problems`` lists every problem found, so an operator fixes them at once.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass
class StoreUnavailable(Unavailable):
    """A store (PostgreSQL, Valkey, S3, graph worker) could not answer.

    Stores translate driver errors into this at their boundary (or into another
    :class:`GraphgateError` when the meaning is known, e.g. a unique violation),
    with the driver's text in ``detail`` for the log only.
    """

    reason: str = "STORE_UNAVAILABLE"
