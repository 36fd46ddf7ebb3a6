"""Fingerprint link: a browser token is only good in the browser it was issued to (C4).

Runs on every call made with a token that carries a device fingerprint, not
only on some routes. A browser version update keeps the fingerprint (versions
are not part of it); another browser or platform is refused and audited as
suspicious.
"""

from __future__ import annotations

import hmac
from typing import Any

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, contract_methods
from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import current_call
from graphgate.server.errors import Unauthenticated
from graphgate.server.services.fingerprint import fingerprint, hints_from_metadata


class FingerprintInterceptor(Link):
    """Refuses browser tokens presented with other client hints."""

    def __init__(self, *, audit_log: AuditLog, selector: Selector = contract_methods) -> None:
        super().__init__(selector=selector)
        self._audit = audit_log

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        principal = current_call().principal
        if principal is None or principal.fingerprint is None:
            return
        presented = fingerprint(hints_from_metadata(context.invocation_metadata()))
        if not hmac.compare_digest(presented, principal.fingerprint):
            self._audit.emit(
                AuditEventType.SUSPICIOUS_ACTIVITY,
                risk=RiskLevel.HIGH,
                outcome="refused",
                reason="FINGERPRINT_MISMATCH",
            )
            raise Unauthenticated(reason="FINGERPRINT_MISMATCH")
