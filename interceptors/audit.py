"""Audit link: one event per security-relevant outcome of every call (C20).

It sits outside the errors link, so it sees the final status of every call,
including refusals by the links below it. Links and services that know more
(the authentication link knows a token was revoked, the query firewall knows
why it refused) write their own specific event; this link adds a generic one
only when a security-relevant call ended and nobody recorded it.
"""

from __future__ import annotations

import grpc

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, contract_methods
from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import current_call_or_none
from graphgate.server.errors import GraphgateError, QueryRefused

_EVENT_BY_CODE: dict[grpc.StatusCode, tuple[AuditEventType, RiskLevel]] = {
    grpc.StatusCode.UNAUTHENTICATED: (AuditEventType.AUTH_FAILURE, RiskLevel.MEDIUM),
    grpc.StatusCode.PERMISSION_DENIED: (AuditEventType.AUTHORIZATION_DENIED, RiskLevel.MEDIUM),
    grpc.StatusCode.INVALID_ARGUMENT: (AuditEventType.INPUT_VALIDATION_FAILURE, RiskLevel.LOW),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (AuditEventType.RATE_LIMIT_EXCEEDED, RiskLevel.MEDIUM),
    grpc.StatusCode.DEADLINE_EXCEEDED: (AuditEventType.OPERATION_TIMEOUT, RiskLevel.LOW),
    grpc.StatusCode.INTERNAL: (AuditEventType.INTERNAL_ERROR, RiskLevel.HIGH),
    grpc.StatusCode.UNKNOWN: (AuditEventType.INTERNAL_ERROR, RiskLevel.HIGH),
}


class AuditInterceptor(Link):
    """Records the outcome of calls that no inner link or service audited."""

    def __init__(self, *, audit_log: AuditLog, selector: Selector = contract_methods) -> None:
        super().__init__(selector=selector)
        self._audit = audit_log

    async def exit(self, context: Context, error: BaseException | None) -> None:
        call = current_call_or_none()
        if call is None or call.audited or not self._audit.enabled:
            return
        code = context.code()
        if code is None or code == grpc.StatusCode.OK:
            return
        known = call.error if isinstance(call.error, GraphgateError) else None
        if isinstance(known, QueryRefused):
            event, risk = AuditEventType(known.audit_event), RiskLevel.HIGH
        elif code in _EVENT_BY_CODE:
            event, risk = _EVENT_BY_CODE[code]
        else:
            return
        self._audit.emit(
            event,
            risk=risk,
            outcome=code.name,
            reason=known.reason if known else code.name,
        )
