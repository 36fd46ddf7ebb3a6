"""Metrics link: counts every call by method and final status, and times it.

It sits right inside the telemetry link, outside audit and errors, so it
sees the final status of every call, refusals by the links below included,
and times everything the chain and the handler do. (Calls refused by
``maximum_concurrent_rpcs`` never reach any link and are not counted.)

From the final status and the error the errors link recorded in the call
state it also counts, without any call site elsewhere:

- UNAUTHENTICATED refusals by ``ErrorInfo`` reason, and operator key failures;
- rate-limit refusals (RESOURCE_EXHAUSTED from ``RateLimited``) by category.

Labels are bounded by :class:`~graphgate.server.observability.Metrics`:
method names come from the contract, never from the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import grpc

from graphgate.interceptors.chain import Context, Link
from graphgate.interceptors.selector import Selector, every_method
from graphgate.server.context import current_call_or_none
from graphgate.server.errors import GraphgateError, RateLimited
from graphgate.server.observability.metrics import BRUTE_FORCE_CATEGORY, OTHER, Metrics

#: The reason of a wrong or missing operator key (``OperatorAccess``).
OPERATOR_KEY_INVALID = "OPERATOR_KEY_INVALID"
#: The reason of a sign-in refused by the brute-force guard.
_BRUTE_FORCE_REASON = "TOO_MANY_FAILED_ATTEMPTS"


def final_code(context: Context, error: BaseException | None) -> grpc.StatusCode:
    """The status the client gets: what was set on the context, else what ``error`` implies."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def rate_limit_category(error: RateLimited) -> str:
    """The category a rate-limit refusal names (the brute-force guard's is its own)."""
    if error.reason == _BRUTE_FORCE_REASON:
        return BRUTE_FORCE_CATEGORY
    return error.metadata.get("category", OTHER)


class MetricsInterceptor(Link):
    """Records count, latency and refusal reasons of every call."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        clock: Callable[[], float] = time.perf_counter,
        selector: Selector = every_method,
    ) -> None:
        super().__init__(selector=selector)
        self._metrics = metrics
        self._clock = clock
        # One variable per link, not per module: two links in one chain (a
        # test's beside the production one) must not clear each other's start.
        self._started: ContextVar[tuple[str, float] | None] = ContextVar(
            f"graphgate_metrics_started_{id(self):x}", default=None
        )

    async def enter(self, request: Any, context: Context, full_method: str) -> None:
        self._started.set((full_method, self._clock()))

    async def exit(self, context: Context, error: BaseException | None) -> None:
        started = self._started.get()
        if started is None:
            return
        self._started.set(None)
        full_method, at = started
        code = final_code(context, error)
        self._metrics.rpc(full_method, code, self._clock() - at)
        call = current_call_or_none()
        known = call.error if call is not None else None
        if code is grpc.StatusCode.UNAUTHENTICATED:
            reason = known.reason if isinstance(known, GraphgateError) else code.name
            self._metrics.auth_failure(reason)
            if reason == OPERATOR_KEY_INVALID:
                self._metrics.operator_auth_failure()
        elif code is grpc.StatusCode.RESOURCE_EXHAUSTED and isinstance(known, RateLimited):
            self._metrics.rate_limited(rate_limit_category(known))
