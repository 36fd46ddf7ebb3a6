"""OperatorService servicer."""

from __future__ import annotations

import json
from typing import Any

from graphgate.server.audit import AuditLog
from graphgate.server.errors import FieldViolation, InvalidArgument
from graphgate.server.handlers import convert
from graphgate.server.services.accounts import AccountService
from graphgate.server.services.admission import AdmissionController
from graphgate.v1 import operator_pb2


class OperatorServicer:
    """Serves graphgate.v1.OperatorService."""

    def __init__(
        self, accounts: AccountService, audit: AuditLog, admission: AdmissionController
    ) -> None:
        self._accounts = accounts
        self._audit = audit
        self._admission = admission

    def _thresholds(self) -> operator_pb2.AdmissionThresholds:
        t = self._admission.thresholds
        return operator_pb2.AdmissionThresholds(
            memory_start_bytes=t.memory_start_bytes,
            memory_stop_bytes=t.memory_stop_bytes,
            cpu_start_percent=t.cpu_start_percent,
            cpu_stop_percent=t.cpu_stop_percent,
            inflight_start=t.inflight_start,
            inflight_stop=t.inflight_stop,
            per_graph_inflight=t.per_graph_inflight,
            loop_lag_start_ms=t.loop_lag_start_ms,
            loop_lag_stop_ms=t.loop_lag_stop_ms,
        )

    async def GetAdmission(
        self, request: operator_pb2.GetAdmissionRequest, context: Any
    ) -> operator_pb2.GetAdmissionResponse:
        controller = self._admission
        return operator_pb2.GetAdmissionResponse(
            shedding=controller.shedding,
            inflight=controller.inflight,
            memory_bytes=controller.pressure.memory_bytes,
            cpu_percent=controller.pressure.cpu_percent,
            shed_total=controller.shed_total,
            thresholds=self._thresholds(),
            loop_lag_ms=controller.loop_lag_ms,
        )

    async def SetAdmissionThresholds(
        self, request: operator_pb2.SetAdmissionThresholdsRequest, context: Any
    ) -> operator_pb2.SetAdmissionThresholdsResponse:
        t = request.thresholds
        current = self._admission.thresholds
        try:
            self._admission.update(
                memory_start_bytes=t.memory_start_bytes,
                memory_stop_bytes=t.memory_stop_bytes,
                cpu_start_percent=t.cpu_start_percent,
                cpu_stop_percent=t.cpu_stop_percent,
                inflight_start=t.inflight_start,
                inflight_stop=t.inflight_stop,
                per_graph_inflight=t.per_graph_inflight,
                loop_lag_start_ms=t.loop_lag_start_ms or current.loop_lag_start_ms,
                loop_lag_stop_ms=t.loop_lag_stop_ms or current.loop_lag_stop_ms,
            )
        except ValueError as exc:
            raise InvalidArgument(
                public_message=str(exc),
                reason="INCONSISTENT_THRESHOLDS",
                violations=[FieldViolation("thresholds", str(exc))],
            ) from exc
        return operator_pb2.SetAdmissionThresholdsResponse(thresholds=self._thresholds())

    async def DeactivateUser(
        self, request: operator_pb2.DeactivateUserRequest, context: Any
    ) -> operator_pb2.DeactivateUserResponse:
        user = await self._accounts.set_active(request.email, False)
        return operator_pb2.DeactivateUserResponse(user=convert.user(user))

    async def ActivateUser(
        self, request: operator_pb2.ActivateUserRequest, context: Any
    ) -> operator_pb2.ActivateUserResponse:
        user = await self._accounts.set_active(request.email, True)
        return operator_pb2.ActivateUserResponse(user=convert.user(user))

    async def SetUserTier(
        self, request: operator_pb2.SetUserTierRequest, context: Any
    ) -> operator_pb2.SetUserTierResponse:
        user = await self._accounts.set_tier(request.email, request.tier)
        return operator_pb2.SetUserTierResponse(user=convert.user(user))

    async def UnblockAddress(
        self, request: operator_pb2.UnblockAddressRequest, context: Any
    ) -> operator_pb2.UnblockAddressResponse:
        await self._accounts.unblock_address(request.ip_address)
        return operator_pb2.UnblockAddressResponse()

    async def ListSecurityEvents(
        self, request: operator_pb2.ListSecurityEventsRequest, context: Any
    ) -> operator_pb2.ListSecurityEventsResponse:
        events = self._audit.recent(1000)
        if request.event_type:
            events = [e for e in events if e.get("event_type") == request.event_type]
        return operator_pb2.ListSecurityEventsResponse(
            events=[
                operator_pb2.SecurityEvent(
                    event_type=str(e.get("event_type", "")),
                    risk_level=str(e.get("risk_level", "")),
                    json=json.dumps(e, default=str, separators=(",", ":")),
                )
                for e in events[: request.limit or 100]
            ]
        )
