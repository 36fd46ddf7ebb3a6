"""Operator authentication: the operator API key(s), compared in constant time.

During a rotation two keys are accepted (the key ring, C13); every
comparison runs, so timing does not tell which matched.

Failed attempts are audited one by one; more than ``alert_threshold`` failures
within ``window_seconds`` in this process raise a CRITICAL ``operator_alert``
event once per window (C20). Each replica counts its own failures; the
CloudWatch alarm in ``infra/`` sums the ``operator_auth_failure`` events of
all replicas, so a guesser spreading attempts still trips it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import Principal, PrincipalKind
from graphgate.server.errors import Unauthenticated
from graphgate.server.secrets.keyring import KeyringCheck


class OperatorAccess:
    """Checks the operator key and watches for guessing."""

    def __init__(
        self,
        *,
        operator_keys: Callable[[], Sequence[str]],
        audit: AuditLog,
        alert_threshold: int = 5,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = operator_keys
        self._audit = audit
        self._threshold = alert_threshold
        self._window = window_seconds
        self._clock = clock
        self._failures: deque[float] = deque()
        self._alerted_at: float | None = None
        self.failures_total = 0

    def authenticate(self, presented: str | None) -> Principal:
        """The operator principal, or :class:`Unauthenticated` (audited)."""
        if KeyringCheck(tuple(self._keys())).matches(presented):
            return Principal(kind=PrincipalKind.OPERATOR, user_id="operator")
        self._record_failure()
        raise Unauthenticated(reason="OPERATOR_KEY_INVALID")

    def _record_failure(self) -> None:
        now = self._clock()
        self.failures_total += 1
        self._failures.append(now)
        while self._failures and self._failures[0] <= now - self._window:
            self._failures.popleft()
        self._audit.emit(
            AuditEventType.OPERATOR_AUTH_FAILURE,
            risk=RiskLevel.HIGH,
            outcome="refused",
            reason="wrong or missing operator key",
        )
        recent = len(self._failures)
        quiet = self._alerted_at is None or now - self._alerted_at > self._window
        if recent > self._threshold and quiet:
            self._alerted_at = now
            self._audit.emit(
                AuditEventType.OPERATOR_ALERT,
                risk=RiskLevel.CRITICAL,
                outcome="alert",
                reason=f"{recent} failed operator authentications in {self._window:.0f}s",
                failures=recent,
            )
