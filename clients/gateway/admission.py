"""The sidecar's own admission control (C18): shed load before paying for it.

:class:`AdmissionController` counts requests in flight. Once ``shed_at`` are
in flight it sheds every new request with 503, ``Retry-After`` and the JSON
error shape (reason ``OVERLOADED``, a ``RetryInfo``), and keeps shedding until
fewer than ``resume_below`` remain: hysteresis, so it does not flap at the
edge. Thresholds can be changed while serving
(:meth:`AdmissionController.set_thresholds`, e.g. from an operator hook).

The middleware sits before body reading, binding and the upstream call, so a
shed request costs a counter comparison. Health checks are never shed: a
load balancer must see an overloaded sidecar as alive, not dead.
"""

from __future__ import annotations

import grpc
from starlette.types import ASGIApp, Receive, Scope, Send

from graphgate.clients.gateway.options import AdmissionThresholds
from graphgate.clients.gateway.status import edge_error


class AdmissionController:
    """In-flight accounting with hysteresis. One per process, one event loop."""

    def __init__(self, thresholds: AdmissionThresholds) -> None:
        self.thresholds = thresholds
        self.in_flight = 0
        self.shedding = False
        #: Requests shed since start (a figure for metrics and tests).
        self.shed_total = 0

    def set_thresholds(self, thresholds: AdmissionThresholds) -> None:
        """Change the thresholds now; takes effect on the next request."""
        self.thresholds = thresholds

    def try_enter(self) -> bool:
        """Count a new request in, or return False when it must be shed."""
        limits = self.thresholds
        if self.shedding and self.in_flight < limits.resume_below:
            self.shedding = False
        elif not self.shedding and self.in_flight >= limits.shed_at:
            self.shedding = True
        if self.shedding:
            self.shed_total += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Count a finished request out (exactly once per successful enter)."""
        self.in_flight -= 1


class AdmissionMiddleware:
    """Sheds requests the controller refuses; ``exempt`` paths always pass."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        controller: AdmissionController,
        exempt: frozenset[str] = frozenset({"/healthz"}),
    ) -> None:
        self.app = app
        self._controller = controller
        self._exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        controller = self._controller
        if not controller.try_enter():
            retry = controller.thresholds.retry_after_seconds
            response = edge_error(
                503,
                grpc.StatusCode.UNAVAILABLE,
                "OVERLOADED",
                "server overloaded, retry later",
                retry_after=retry,
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            controller.leave()
