"""Per-call state shared by the interceptor chain and the handlers.

One :class:`CallState` per RPC lives in a context variable: the telemetry link
creates it, later links fill it in (principal, graph, rate figures), handlers
read it. grpc.aio runs each call in its own task, so a value set here never
leaks into another call.
"""

from __future__ import annotations

import enum
from contextvars import ContextVar
from dataclasses import dataclass, field

from graphgate.server.contract import MethodInfo
from graphgate.server.errors import Unauthenticated
from graphgate.server.stores.gate import GateResult


class PrincipalKind(enum.Enum):
    """How a caller proved who it is."""

    USER = "user"
    API_KEY = "api_key"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller."""

    kind: PrincipalKind
    user_id: str
    email: str = ""
    tier: str = "free"
    #: For API keys: the key's id and its public lookup id (which names the
    #: key's rate-limit bucket, in the same cluster slot as its cache entry).
    api_key_id: str | None = None
    key_lookup_id: str | None = None
    #: For JWTs: the token's id, issue and expiry times (epoch seconds) and
    #: the device fingerprint of a browser session.
    token_id: str | None = None
    token_issued_at: float | None = None
    token_expires_at: float | None = None
    fingerprint: str | None = None


@dataclass(slots=True)
class CallState:
    """What the chain knows about the current call."""

    request_id: str
    full_method: str
    method: MethodInfo | None
    peer: str
    client_ip: str
    user_agent: str = ""
    trace_id: str = ""
    principal: Principal | None = None
    graph_id: str | None = None
    #: The caller's role on ``graph_id``: "admin", "member" or "viewer".
    graph_role: str = ""
    #: Metadata to return to the client: initial metadata on success,
    #: trailing metadata on failure.
    response_metadata: list[tuple[str, str]] = field(default_factory=list)
    #: The rate-limit decision, when the authentication gate already counted the call.
    rate_decision: GateResult | None = None
    #: The error that ended the call, as the errors link saw it.
    error: BaseException | None = None
    #: True once an audit event was written for this call, so the audit link
    #: adds its generic event only when no link recorded a specific one.
    audited: bool = False


_current: ContextVar[CallState | None] = ContextVar("graphgate_call_state", default=None)


def current_call() -> CallState:
    """The state of the call being served; raises LookupError outside a call."""
    state = _current.get()
    if state is None:
        raise LookupError("no graphgate call in progress")
    return state


def current_call_or_none() -> CallState | None:
    """The state of the call being served, or None outside a call."""
    return _current.get()


def current_principal() -> Principal:
    """The verified caller of the current call; raises Unauthenticated if none."""
    state = _current.get()
    if state is None or state.principal is None:
        raise Unauthenticated(reason="CREDENTIALS_MISSING")
    return state.principal


def begin_call(state: CallState) -> None:
    """Make ``state`` the current call's state (telemetry link only)."""
    _current.set(state)
