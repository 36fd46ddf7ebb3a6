"""Security audit events: one JSON line per event on a dedicated logger (C20).

Any part of graphgate emits through :class:`AuditLog`; the audit interceptor
adds one event per security-relevant outcome of every call. Events carry the
call's request id, trace id, user, graph, IP, user agent and method from the
call state, so emitters pass only what is specific to the event.

Security: events never hold secrets. Field names that look like credentials
are dropped before an event is written, whatever the caller passed.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from graphgate.server.context import current_call_or_none

AUDIT_LOGGER = "graphgate.audit"

_SECRET_FIELD_MARKERS = ("password", "secret", "token", "api_key", "authorization", "key_hash")


class AuditEventType(enum.Enum):
    """The kinds of security event graphgate records."""

    AUTH_SUCCESS = "auth_success"
    AUTH_FAILURE = "auth_failure"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_INVALID = "token_invalid"
    TOKEN_REVOKED = "token_revoked"
    TOKEN_REUSED = "token_reused"
    API_KEY_INVALID = "api_key_invalid"
    API_KEY_EXPIRED = "api_key_expired"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    AUTHORIZATION_DENIED = "authorization_denied"
    PRIVILEGE_ESCALATION_ATTEMPT = "privilege_escalation_attempt"
    INJECTION_ATTEMPT = "injection_attempt"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    SUSPICIOUS_ACTIVITY = "suspicious_activity"
    INPUT_VALIDATION_FAILURE = "input_validation_failure"
    DATA_IMPORT = "data_import"
    OPERATION_TIMEOUT = "operation_timeout"
    PASSWORD_CHANGED = "password_changed"
    USER_REGISTERED = "user_registered"
    USER_DEACTIVATED = "user_deactivated"
    LOGOUT = "logout"
    BRUTE_FORCE_BLOCK = "brute_force_block"
    OPERATOR_AUTH_FAILURE = "operator_auth_failure"
    OPERATOR_ALERT = "operator_alert"
    SERVICE_DEGRADED = "service_degraded"
    INTERNAL_ERROR = "internal_error"


class RiskLevel(enum.Enum):
    """How urgently a human should look at an event."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


def _is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_FIELD_MARKERS)


class AuditLog:
    """Writes audit events as JSON lines to the ``graphgate.audit`` logger.

    Emitting never raises and never blocks on I/O beyond the logging handler;
    the last ``recent_capacity`` events are kept in memory for operators.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
        recent_capacity: int = 1000,
    ) -> None:
        self._enabled = enabled
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)
        self._clock = clock
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent_capacity)

    @property
    def enabled(self) -> bool:
        """Whether events are written (``SECURITY_AUDIT_ENABLED``)."""
        return self._enabled

    def emit(
        self,
        event: AuditEventType,
        *,
        risk: RiskLevel,
        outcome: str,
        reason: str = "",
        **fields: str | int | float | bool | None,
    ) -> dict[str, Any] | None:
        """Record one event; returns it (or None when auditing is off)."""
        if not self._enabled:
            return None
        record: dict[str, Any] = {
            "ts": round(self._clock(), 3),
            "event_type": event.value,
            "risk_level": risk.value,
            "outcome": outcome,
            "reason": reason,
        }
        call = current_call_or_none()
        if call is not None:
            call.audited = True
            record.update(
                request_id=call.request_id,
                trace_id=call.trace_id,
                method=call.full_method,
                ip=call.client_ip,
                user_agent=call.user_agent[:256],
                user_id=call.principal.user_id if call.principal else None,
                api_key_id=call.principal.api_key_id if call.principal else None,
                graph_id=call.graph_id,
            )
        for name, value in fields.items():
            if not _is_secret_field(name):
                record[name] = value
        try:
            self._logger.info(json.dumps(record, default=str, separators=(",", ":")))
        except Exception:
            logging.getLogger("graphgate").exception("audit event could not be written")
        self._recent.append(record)
        return record

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest events, newest first."""
        return list(reversed(self._recent))[:limit]
