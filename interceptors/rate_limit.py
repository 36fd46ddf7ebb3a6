"""Rate-limit link: sliding windows per identity and category (C17).

The identity is a verified API key, else the user, else the client address
(sign-in and sign-up always count by address). Authenticated calls were
usually counted by the authentication gate in the same Valkey round trip;
this link then only reads the decision. Other calls are counted here. While
Valkey fails, the circuit breaker routes counting to per-process limiters.

Figures travel as ``x-ratelimit-limit``, ``x-ratelimit-remaining``,
``x-ratelimit-reset`` (seconds) and, on refusal, ``retry-after``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, contract_methods
from graphgate.server.audit import AuditEventType, AuditLog, RiskLevel
from graphgate.server.context import CallState, current_call
from graphgate.server.errors import QuotaViolation, RateFigures, RateLimited, StoreUnavailable
from graphgate.server.services.rate_limits import (
    BY_ADDRESS,
    TIERS,
    CircuitBreaker,
    LocalRateLimiter,
    RateLimitPolicy,
)
from graphgate.server.stores.gate import GateResult, GateStore, RateSpec, ip_tag, key_tag, user_tag


class RateLimitInterceptor(Link):
    """Refuses calls over their category's limit and reports the figures."""

    def __init__(
        self,
        *,
        policy: RateLimitPolicy,
        gate: GateStore,
        breaker: CircuitBreaker,
        local: LocalRateLimiter,
        address_digest: Callable[[str], str],
        audit_log: AuditLog,
        clock: Callable[[], float] = time.time,
        selector: Selector = contract_methods,
    ) -> None:
        super().__init__(selector=selector)
        self._policy = policy
        self._gate = gate
        self._breaker = breaker
        self._local = local
        self._digest = address_digest
        self._audit = audit_log
        self._clock = clock

    def _identity(self, call: CallState, category: str) -> tuple[str, str]:
        principal = call.principal
        if principal is None or category in BY_ADDRESS:
            return ip_tag(self._digest(call.client_ip)), "free"
        if principal.key_lookup_id is not None:
            return key_tag(principal.key_lookup_id), principal.tier
        return user_tag(principal.user_id), principal.tier

    async def _count(self, tag: str, spec: RateSpec, tier: str) -> GateResult:
        if self._breaker.allow():
            try:
                result = await self._gate.count(tag, spec, int(self._clock() * 1000))
            except StoreUnavailable:
                self._breaker.failure()
            else:
                self._breaker.success()
                return result
        return self._local.check(tag, spec, tier)

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        call = current_call()
        if call.method is None:
            return
        category = self._policy.category(call.method.policy.rate_limit)
        tag, tier = self._identity(call, category)
        decision = call.rate_decision
        spec = self._policy.spec_for_tier(category, tier)
        if decision is None:
            decision = await self._count(tag, spec, tier)
        limit = spec.limits[TIERS.index(tier) if tier in TIERS else 0]
        reset = math.ceil(decision.reset_ms / 1000)
        call.response_metadata += [
            ("x-ratelimit-limit", str(limit)),
            ("x-ratelimit-remaining", str(decision.remaining)),
            ("x-ratelimit-reset", str(reset)),
        ]
        if decision.allowed:
            return
        retry_after = max(1, reset)
        self._audit.emit(
            AuditEventType.RATE_LIMIT_EXCEEDED,
            risk=RiskLevel.MEDIUM,
            outcome="refused",
            reason=category,
        )
        raise RateLimited(
            public_message=f"rate limit exceeded for {category}, retry in {retry_after}s",
            figures=RateFigures(limit, 0, reset, retry_after),
            quota_violations=[
                QuotaViolation(subject=f"{category}", description=f"{limit} calls per window")
            ],
            metadata={"category": category},
        )
